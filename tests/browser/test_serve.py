"""`python -m web serve`: MIME types, security headers, Range, and nothing outside the site (no browser)."""

from __future__ import annotations

import email.utils
import http.client
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen35web.web.serve import (
    CONTENT_SECURITY_POLICY,
    DEFAULT_HOST,
    make_server,
    parse_range,
    serving,
)

FILES = {
    "index.html": b"<!doctype html><title>t</title>",
    "app.js": b"export {};",
    "vendor/ort/ort.mjs": b"export {};",
    "vendor/ort/ort.wasm": b"\0asm\1\0\0\0",
    "models/m/model.onnx": b"onnx",
    "models/m/model.onnx.data": bytes(range(10)),
    "models/m/manifest.json": b"{}",
    "style.css": b"body{}",
    "py/runtime.zip": b"PK",
    ".qwen35web-site": b"{}",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    site = root / "site"
    for name, data in FILES.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
    (root / "secret.txt").write_text("outside the site")
    os.symlink(root / "secret.txt", site / "link-out.txt")
    return site


@pytest.fixture(scope="module")
def address(site: Path) -> Iterator[tuple[str, int]]:
    with serving(site) as url:
        yield _host_port(url)


def _host_port(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return str(parts.hostname), int(parts.port or 80)


def request(
    address: tuple[str, int], path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A raw request: http.client sends the path exactly as given (no `..` normalisation)."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/vendor/ort/ort.mjs", "text/javascript; charset=utf-8"),
        ("/vendor/ort/ort.wasm", "application/wasm"),
        ("/models/m/model.onnx", "application/octet-stream"),
        ("/models/m/model.onnx.data", "application/octet-stream"),
        ("/models/m/manifest.json", "application/json"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/py/runtime.zip", "application/zip"),
    ],
)
def test_mime_types(address, path: str, mime: str) -> None:
    status, headers, _ = request(address, path)
    assert (status, headers["Content-Type"]) == (200, mime)


@pytest.mark.parametrize("path", ["/", "/no-such-file"])
def test_security_headers_on_every_answer(address, path: str) -> None:
    _, headers, _ = request(address, path)
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    # Cross-origin isolated by default: onnxruntime-web's wasm threads need it.
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_policy_allows_no_inline_script_and_no_eval() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "'unsafe-eval'" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("bytes=2-5", 206, bytes([2, 3, 4, 5]), "bytes 2-5/10"),
        ("bytes=7-", 206, bytes([7, 8, 9]), "bytes 7-9/10"),
        ("bytes=-3", 206, bytes([7, 8, 9]), "bytes 7-9/10"),
        ("bytes=8-100", 206, bytes([8, 9]), "bytes 8-9/10"),
        ("bytes=10-20", 416, None, "bytes */10"),
        ("bytes=0-1,4-5", 200, bytes(range(10)), None),  # several ranges: the whole file
    ],
    ids=["middle", "open-end", "suffix", "past-end", "unsatisfiable", "multi"],
)
def test_range_requests(
    address, header: str, status: int, body: bytes | None, content_range: str | None
) -> None:
    got_status, headers, got_body = request(address, "/models/m/model.onnx.data", headers={"Range": header})
    assert got_status == status
    assert headers.get("Content-Range") == content_range
    if body is not None:
        assert got_body == body
        assert headers["Content-Length"] == str(len(body))


def test_parse_range_edge_cases() -> None:
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=-0", 5) is None
    assert parse_range("bytes=0-", 0) is None
    with pytest.raises(ValueError):
        parse_range("items=0-1", 5)


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/models/../../secret.txt",
        "/models/%2E%2E/%2E%2E/secret.txt",
        "/link-out.txt",
        "/.qwen35web-site",
        "/models/m/..%2f..%2f..%2fsecret.txt",
        "/a%00b",
        "/..%5csecret.txt",
        "/models",
    ],
    ids=[
        "dotdot",
        "encoded-dotdot",
        "nested-dotdot",
        "upper-encoded",
        "symlink-out",
        "hidden-file",
        "encoded-slashes",
        "nul",
        "backslash",
        "directory-without-index",
    ],
)
def test_nothing_outside_the_site_is_served(address, path: str) -> None:
    status, _, body = request(address, path)
    assert status == 404
    assert b"outside the site" not in body


def test_head_has_headers_and_no_body(address) -> None:
    status, headers, body = request(address, "/app.js", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, str(len(FILES["app.js"])), b"")


def test_other_methods_are_refused(address) -> None:
    status, headers, _ = request(address, "/app.js", method="POST")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")


def test_unchanged_files_answer_304(address, site: Path) -> None:
    since = email.utils.formatdate((site / "app.js").stat().st_mtime + 1, usegmt=True)
    status, _, body = request(address, "/app.js", headers={"If-Modified-Since": since})
    assert (status, body) == (304, b"")


def test_no_isolation_leaves_out_coop_and_coep(site: Path) -> None:
    with serving(site, isolated=False) as url:
        _, headers, _ = request(_host_port(url), "/")
    assert "Cross-Origin-Opener-Policy" not in headers and "Cross-Origin-Embedder-Policy" not in headers
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"


@pytest.mark.parametrize(
    ("flags", "isolated"),
    [([], True), (["--no-isolation"], False), (["--coop-coep"], True)],
    ids=["default", "no-isolation", "old-coop-coep-flag"],
)
def test_serve_command_isolates_unless_told_not_to(site: Path, flags: list[str], isolated: bool) -> None:
    command = [sys.executable, "-m", "qwen35web", "site", "serve", str(site), "--port", "0", *flags]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "serving SITE at URL (Ctrl+C stops)"
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        _, headers, _ = request(_host_port(url), "/")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert ("Cross-Origin-Embedder-Policy" in headers) is isolated


def test_binds_the_loopback_address_by_default(site: Path) -> None:
    server = make_server(site, port=0)
    try:
        assert DEFAULT_HOST == "127.0.0.1" and server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "{missing}"], "is not a built site"),
        (["serve", "{site}", "--port", "nope"], "argument --port: invalid int value"),
    ],
    ids=["missing-site", "bad-port"],
)
def test_serve_command_line_refuses_bad_input(
    site: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.format(site=site, missing=tmp_path / "missing") for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "qwen35web", "site", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
