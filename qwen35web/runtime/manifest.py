"""Reading a bundle's manifest.json: parsed with the bundle format's types, checked against the disk.

Stdlib only (also runs in Pyodide). Every malformed input raises `BundleError` with one readable
sentence; nothing else escapes, whatever the manifest holds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from qwen35web.runtime.bundle_format import MANIFEST
from qwen35web.runtime.bundle_format import Manifest as Manifest  # the reader's result type
from qwen35web.runtime.errors import BundleError


def parse_manifest_text(text: str | bytes) -> Manifest:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise BundleError("manifest.json is not valid JSON") from None
    return Manifest.from_json(data)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def load_local_manifest(bundle_dir: Path, verify_hashes: bool = True) -> Manifest:
    """Read and check a bundle on disk: every listed file present, of its size, of its sha256."""
    if not bundle_dir.is_dir():
        raise BundleError(f"bundle directory {bundle_dir} does not exist")
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle_dir} has no {MANIFEST}: not a bundle")
    manifest = parse_manifest_text(path.read_bytes())
    root = bundle_dir.resolve()
    for entry in manifest.files.values():
        file = (bundle_dir / entry.path).resolve()
        if root not in file.parents:
            raise BundleError(f"manifest.json: {entry.path!r} resolves outside the bundle")
        if not file.is_file():
            raise BundleError(f"bundle file {entry.path} is missing")
        size = file.stat().st_size
        if size != entry.size:
            raise BundleError(f"{entry.path}: size {size} bytes, manifest says {entry.size} (truncated?)")
        if verify_hashes and sha256_file(file) != entry.sha256:
            raise BundleError(f"{entry.path}: sha256 does not match the manifest (corrupt file)")
    return manifest
