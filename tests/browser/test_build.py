"""`python -m web build`: the site's layout, the Pyodide archive, the page's CSP hygiene, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from qwen35web.web.build import STATIC_DIR, BuildError, SiteSpec, build_site
from tests.old_bundles import FORMAT_1_MESSAGE

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qwen35web", "site", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def two_model_site(tmp_path_factory: pytest.TempPathFactory, export_bundle) -> Path:
    site = tmp_path_factory.mktemp("build") / "site"
    bundle = str(export_bundle("text", "fused"))
    done = run_cli(
        "build",
        str(site),
        "--bundle",
        f"second={bundle}",
        "--bundle",
        f"first={bundle}",
        "--note",
        "first=Random weights.",
    )
    assert done.returncode == 0, done.stderr
    return site


def test_layout_and_models_index(two_model_site: Path) -> None:
    for name in (
        "index.html",
        "page/app.js",
        "page/ui.js",
        "worker/worker.js",
        "worker/weights.js",
        "worker/weight-cache.js",
        "errors.mjs",
        "module/shell.mjs",
        "qwen35web.mjs",
        "qwen35web.d.mts",
        "example.html",
        "page/example.js",
        "sw.js",
        "page/style.css",
        "favicon.svg",
        "vendor/ort/ort.webgpu.bundle.min.mjs",
        "vendor/ort/ort-wasm-simd-threaded.asyncify.wasm",
        "vendor/ort/ort.wasm.bundle.min.mjs",
        "vendor/ort/ort-wasm-simd-threaded.wasm",
        "vendor/pyodide/pyodide.mjs",
        "vendor/pyodide/pyodide.asm.wasm",
        "vendor/pyodide/python_stdlib.zip",
        "py/runtime.zip",
        "models/first/manifest.json",
        "models/second/model.onnx.data",
    ):
        assert (two_model_site / name).is_file(), name
    index = json.loads((two_model_site / "models/index.json").read_text())
    assert index["default"] == "second"  # the first --bundle given
    assert [(m["name"], m["note"]) for m in index["models"]] == [("second", ""), ("first", "Random weights.")]
    packages = json.loads((two_model_site / "vendor/packages.json").read_text())
    assert {p: v["version"] for p, v in packages.items()} == {
        "onnxruntime-web": "1.31.1",
        "pyodide": "314.0.7",
    }


def test_runtime_archive_runs_on_the_standard_library_alone(two_model_site: Path) -> None:
    archive = two_model_site / "py/runtime.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "qwen35web/runtime/browser/session.py" in names and "qwen35web/runtime/browser/engine.py" in names
    assert "qwen35web/__init__.py" in names and "qwen35web/runtime/tokenizer/__init__.py" in names
    assert "qwen35web/runtime/native/engine.py" not in names
    assert any(n.startswith("jinja2/") for n in names) and "markupsafe/__init__.py" in names
    assert not any(n.endswith((".so", ".pyd", ".c")) for n in names)
    # -S -I: no site-packages, so jinja2 and markupsafe must come from the archive (pure Python).
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import jinja2, markupsafe;"
        "import qwen35web.runtime.browser.session;"
        "from qwen35web.runtime.chat import render_chat;"
        "messages = [{'role': 'user', 'content': 'hi'}];"
        "print(jinja2.__file__, render_chat('{{ messages[0].content }}!', messages))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", script, str(archive)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(archive)) and done.stdout.strip().endswith("hi!")


class _InlineCodeFinder(HTMLParser):
    """Everything a strict CSP would block: inline scripts, inline styles, event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self.in_script = True
            if "src" not in names:
                self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        self.problems += [f"{tag}[{name}]" for name in names if name == "style" or name.startswith("on")]
        self.problems += [f"{tag} loads {v}" for n, v in attrs if n in ("src", "href") and v and ":" in v]

    def handle_endtag(self, tag: str) -> None:
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self.in_script and data.strip():
            self.problems.append("script body")


def test_page_has_no_inline_code_and_loads_nothing_from_elsewhere() -> None:
    finder = _InlineCodeFinder()
    finder.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert finder.problems == []
    for script in [*STATIC_DIR.rglob("*.js"), *STATIC_DIR.rglob("*.mjs")]:
        text = script.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, script.name
        assert "eval(" not in text and "new Function" not in text, script.name


def _shell(site: Path) -> dict:
    """The listing `qwen35web site build` filled into sw.js."""
    line = next(x for x in (site / "sw.js").read_text().splitlines() if x.startswith("const SHELL = "))
    return json.loads(line.removeprefix("const SHELL = ").removesuffix(";"))


def test_service_worker_lists_the_whole_shell_with_hashes(two_model_site: Path) -> None:
    shell = _shell(two_model_site)
    marker = json.loads((two_model_site / ".qwen35web-site").read_text())
    assert shell["version"] == marker["version"] and len(shell["version"]) == 16
    core = shell["core"]
    for name in (
        "index.html",
        "qwen35web.mjs",
        "worker/worker.js",
        "py/runtime.zip",
        "vendor/pyodide/pyodide.asm.wasm",
    ):
        assert name in core, name
    assert "models/index.json" in core and not any(p.startswith("models/first/") for p in core)
    assert "sw.js" not in core and not any(p.startswith("vendor/ort/") for p in core)
    assert set(shell["backends"]) == {"webgpu", "wasm"}
    assert "vendor/ort/ort-wasm-simd-threaded.wasm" in shell["backends"]["wasm"]
    for path, sha in [*core.items(), *shell["backends"]["wasm"].items()]:
        assert hashlib.sha256((two_model_site / path).read_bytes()).hexdigest() == sha, path


def test_site_version_follows_the_shell(tmp_path: Path, export_bundle) -> None:
    bundle = export_bundle("text", "fused")
    versions = []
    for note in ("one", "one", "two"):
        site = tmp_path / f"site-{len(versions)}"
        build_site(SiteSpec(site, [("m", bundle)], {"m": note}))
        versions.append(_shell(site)["version"])
    assert versions[0] == versions[1] != versions[2]  # same inputs, same version; a changed index, a new one


def test_rebuilding_replaces_a_site_it_made(two_model_site: Path, export_bundle) -> None:
    bundle = export_bundle("text", "fused")
    build_site(SiteSpec(two_model_site, [("only", bundle)]))
    index = json.loads((two_model_site / "models/index.json").read_text())
    assert index["default"] == "only" and not (two_model_site / "models/first").exists()


def test_refuses_to_replace_a_directory_it_did_not_make(tmp_path: Path, export_bundle) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(BuildError, match="was not made by `qwen35web site build`"):
        build_site(SiteSpec(tmp_path, [("m", export_bundle("text", "fused"))]))
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_missing_npm_packages_name_the_fix(tmp_path: Path, export_bundle) -> None:
    (tmp_path / "package.json").write_text('{"dependencies": {"pyodide": "314.0.7"}}')
    with pytest.raises(BuildError, match="run `npm ci`"):
        build_site(SiteSpec(tmp_path / "site", [("m", export_bundle("text", "fused"))], npm_root=tmp_path))
    assert not (tmp_path / "site").exists()


def test_corrupt_bundle_is_refused(tmp_path: Path, export_bundle) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(export_bundle("text", "fused"), bundle)
    data = bytearray((bundle / "model.onnx.data").read_bytes())
    data[0] ^= 0xFF
    (bundle / "model.onnx.data").write_bytes(bytes(data))
    done = run_cli("build", str(tmp_path / "site"), "--bundle", f"m={bundle}")
    assert done.returncode == 2
    assert (
        done.stderr
        == "error: bundle 'm': model.onnx.data: sha256 does not match the manifest (corrupt file)\n"
    )
    assert not (tmp_path / "site").exists()


def test_format_1_bundle_is_refused_in_one_line(tmp_path: Path, format_1_bundle: Path) -> None:
    done = run_cli("build", str(tmp_path / "site"), "--bundle", f"m={format_1_bundle}")
    assert done.returncode == 2
    assert done.stderr == f"error: bundle 'm': {FORMAT_1_MESSAGE}\n"
    assert not (tmp_path / "site").exists()


def test_wasm_bundle_of_another_model_is_refused(tmp_path: Path, export_bundle) -> None:
    other = tmp_path / "other"
    shutil.copytree(export_bundle("text", "fused"), other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model"]["rms_norm_eps"] = 1e-5
    (other / "manifest.json").write_text(json.dumps(manifest))
    bundle = export_bundle("text", "fused")
    done = run_cli("build", str(tmp_path / "site"), "--bundle", f"m={bundle}", "--wasm-bundle", f"m={other}")
    assert done.returncode == 2
    assert done.stderr == "error: wasm bundle 'm' holds a different model from bundle 'm'\n"
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one --bundle NAME=BUNDLE_DIR"),
        (["--bundle", "no-equals-sign"], "must look like NAME=BUNDLE"),
        (["--bundle", "../up=/tmp"], "bundle name '../up' must be letters"),
        (["--bundle", "a={tmp}/none"], "bundle 'a': bundle directory"),
        (["--bundle", "a={tmp}", "--bundle", "a={tmp}"], "bundle name 'a' is given twice"),
        (["--bundle", "a={tmp}", "--note", "b=text"], "--note for 'b', which is not a --bundle name"),
        (
            ["--bundle", "a={tmp}", "--wasm-bundle", "b={tmp}"],
            "--wasm-bundle for 'b', which is not a --bundle",
        ),
    ],
    ids=["no-bundle", "no-equals", "bad-name", "missing-dir", "duplicate", "stray-note", "stray-wasm-bundle"],
)
def test_bad_command_lines_give_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    argv = [a.format(tmp=tmp_path) for a in args]
    done = run_cli("build", str(tmp_path / "site"), *argv)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
