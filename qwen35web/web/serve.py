"""`qwen35web site serve SITE_DIR [--port 8000] [--host 127.0.0.1] [--no-isolation]`: serve the built site.

A small static server for the demo and the browser tests: the right MIME types (wasm must be
application/wasm for streaming compilation), a strict Content-Security-Policy (no inline script,
WebAssembly allowed), nosniff, HTTP Range requests, and nothing outside the site directory: the
resolved path of every file must lie inside the resolved site root (no `..`, no symlink out, no
hidden files). Only GET and HEAD.

Cross-origin isolated by default (COOP same-origin, COEP require-corp; CORP same-origin always): the
page then has SharedArrayBuffer, which onnxruntime-web's wasm threads need. `isolated=False`
(`--no-isolation`) leaves COOP/COEP out, as a host that cannot set headers would; the site's service
worker then adds them itself (static/sw.js).
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".data": "application/octet-stream",
    ".zip": "application/zip",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
    ".mts": "text/plain; charset=utf-8",  # the module's TypeScript declarations (qwen35web.d.mts)
    ".map": "application/json",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 20


def content_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single `bytes=` range; None when unsatisfiable.

    Raises ValueError for a header this server ignores (several ranges, other units): the whole
    file is then sent, as RFC 9110 allows.
    """
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise ValueError(header)
    start_text, end_text = match.groups()
    if not start_text:  # suffix range: the last N bytes
        length = int(end_text)
        return (max(size - length, 0), size - 1) if length > 0 and size > 0 else None
    start = int(start_text)
    end = min(int(end_text), size - 1) if end_text else size - 1
    if start >= size or end < start:
        return None
    return start, end


class SiteHandler(BaseHTTPRequestHandler):
    server_version = "qwen35web"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    site_root: Path  # set on the subclass made by make_server
    cross_origin_isolated = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        if self.cross_origin_isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def resolve(self) -> Path | None:
        """The file a request path names, or None if it is not a servable file inside the site."""
        raw = urllib.parse.urlsplit(self.path).path
        relative = urllib.parse.unquote(raw)
        if "\x00" in relative or "\\" in relative:
            return None
        parts = [p for p in relative.split("/") if p]
        if any(p.startswith(".") for p in parts):  # hidden files, "." and ".."
            return None
        candidate = self.site_root.joinpath(*parts)
        if candidate.is_dir():
            candidate = candidate / "index.html"
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if real != self.site_root and self.site_root not in real.parents:
            return None
        return real if real.is_file() else None

    def send_error_page(self, status: HTTPStatus, extra: dict[str, str] | None = None) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_modified(self, modified: float) -> bool:
        since = self.headers.get("If-Modified-Since")
        if not since or self.headers.get("Range"):
            return False
        try:
            return int(modified) <= email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False

    def _byte_range(self, size: int) -> tuple[int, int, HTTPStatus] | None:
        """(first, last, status) to send; None after answering 416 itself."""
        header = self.headers.get("Range")
        if not header:
            return 0, size - 1, HTTPStatus.OK
        try:
            wanted = parse_range(header, size)
        except ValueError:
            return 0, size - 1, HTTPStatus.OK
        if wanted is None:
            self.send_error_page(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"}
            )
            return None
        return wanted[0], wanted[1], HTTPStatus.PARTIAL_CONTENT

    def do_GET(self) -> None:
        path = self.resolve()
        if path is None:
            self.send_error_page(HTTPStatus.NOT_FOUND)
            return
        stat = path.stat()
        if self._not_modified(stat.st_mtime):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.end_headers()
            return
        span = self._byte_range(stat.st_size)
        if span is None:
            return
        first, last, status = span
        self.send_response(status)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(max(last - first + 1, 0)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        self.send_header("Cache-Control", "no-cache")  # revalidate: a rebuilt site shows at once
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {first}-{last}/{stat.st_size}")
        self.end_headers()
        if self.command != "HEAD":
            self._send_bytes(path, first, last)

    def _send_bytes(self, path: Path, first: int, last: int) -> None:
        remaining = last - first + 1
        with path.open("rb") as f:
            f.seek(first)
            while remaining > 0:
                block = f.read(min(_CHUNK, remaining))
                if not block:
                    break
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the browser went away (a cancelled download)
                remaining -= len(block)

    do_HEAD = do_GET

    def _refuse(self) -> None:
        self.send_error_page(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


def make_server(
    site_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, isolated: bool = True
) -> ThreadingHTTPServer:
    """A server for `site_dir` bound to host:port (port 0 picks a free one); call serve_forever().
    `isolated`: send COOP/COEP (cross-origin isolation)."""
    root = site_dir.resolve(strict=True)
    handler = type("BoundSiteHandler", (SiteHandler,), {"site_root": root, "cross_origin_isolated": isolated})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


@contextmanager
def serving(site_dir: Path, host: str = DEFAULT_HOST, port: int = 0, isolated: bool = True) -> Iterator[str]:
    """Serve `site_dir` from a daemon thread while the block runs (tests, benchmarks); yields its base URL."""
    server = make_server(site_dir, host, port, isolated)
    threading.Thread(target=server.serve_forever, name="site-server", daemon=True).start()
    try:
        yield url_of(server)
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/"


def is_site(site_dir: Path) -> bool:
    return (site_dir / "index.html").is_file() and os.access(site_dir, os.R_OK)
