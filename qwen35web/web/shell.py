"""The site's app shell for its service worker (static/sw.js): which files, their sha256, the version.

The shell is every file the page needs besides model bundles: the page and module files, Pyodide, the
runtime archive, models/index.json, and onnxruntime-web's files per backend (cached only for the backend
a browser uses). The version is a hash of all of it, so any change to the shell is a new version, and
the service worker, which carries the list, is a different script: browsers install it as an update.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SERVICE_WORKER = "sw.js"
_PLACEHOLDER = "const SHELL = null; // filled in by qwen35web site build"
# onnxruntime-web's files (under vendor/ort/) that each backend loads: its JS build and its wasm.
BACKEND_FILES = {
    "webgpu": ("ort.webgpu.bundle.min.mjs", "ort-wasm-simd-threaded.asyncify.wasm"),
    "wasm": ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm"),
}
_ORT_DIR = "vendor/ort"
_NOT_SHELL_PREFIXES = ("models/",)
_SHELL_MODEL_FILES = ("models/index.json",)
VERSION_LENGTH = 16


class ShellError(Exception):
    """The static files lack what the shell needs (a broken checkout); one sentence."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_core(relative: str) -> bool:
    if relative == SERVICE_WORKER or relative.startswith(".") or "/." in relative:
        return False
    if relative.startswith(f"{_ORT_DIR}/"):
        return False
    return relative in _SHELL_MODEL_FILES or not relative.startswith(_NOT_SHELL_PREFIXES)


def shell_manifest(site: Path) -> dict:
    """{version, core: {path: sha256}, backends: {backend: {path: sha256}}} for the files under `site`."""
    files = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    core = {path: _sha256(site / path) for path in files if _is_core(path)}
    backends = {}
    for backend, names in BACKEND_FILES.items():
        paths = [f"{_ORT_DIR}/{name}" for name in names]
        missing = [path for path in paths if not (site / path).is_file()]
        if missing:
            raise ShellError(f"the site lacks {', '.join(missing)} (onnxruntime-web's {backend} build)")
        backends[backend] = {path: _sha256(site / path) for path in paths}
    listing = json.dumps({"core": core, "backends": backends}, sort_keys=True).encode()
    version = hashlib.sha256(listing).hexdigest()[:VERSION_LENGTH]
    return {"version": version, "core": core, "backends": backends}


def write_service_worker(site: Path) -> str:
    """Fill the shell listing into the site's sw.js (copied from static/); returns the site version."""
    worker = site / SERVICE_WORKER
    text = worker.read_text(encoding="utf-8")
    if text.count(_PLACEHOLDER) != 1:
        raise ShellError(f"{SERVICE_WORKER} must hold the line {_PLACEHOLDER!r} exactly once")
    manifest = shell_manifest(site)
    filled = f"const SHELL = {json.dumps(manifest, sort_keys=True)};"
    worker.write_text(text.replace(_PLACEHOLDER, filled), encoding="utf-8")
    return str(manifest["version"])
