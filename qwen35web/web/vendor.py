"""Where the page's npm files (onnxruntime-web, Pyodide) come from: one home for their names and pins.

Two places can hold them, tried in this order:
  1. the installed package: `qwen35web/web/_vendor/`, filled when the wheel is built (setup.py runs
     `fill_vendor_dir`, from the checkout's node_modules or from the npm registry tarballs pinned, with their
     sha512 integrity, by package-lock.json), so a pip user needs no npm;
  2. a checkout: `node_modules/` beside package.json, installed by `npm ci`.
Both are checked against the pinned versions before a site is built from them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PACKAGE_VENDOR_DIR = Path(__file__).resolve().parent / "_vendor"
CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = "versions.json"
NPM_REGISTRY = "https://registry.npmjs.org"

log = logging.getLogger(__name__)

# npm package -> (destination under the site, files of the package the page loads)
VENDORED: dict[str, tuple[str, list[str]]] = {
    "onnxruntime-web": (
        "vendor/ort",
        [
            "dist/ort.webgpu.bundle.min.mjs",
            "dist/ort-wasm-simd-threaded.asyncify.wasm",
            "dist/ort.wasm.bundle.min.mjs",
            "dist/ort-wasm-simd-threaded.wasm",
        ],
    ),
    "pyodide": (
        "vendor/pyodide",
        ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"],
    ),
}
# Each package's licence file, shipped beside its files.
LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt")


class VendorError(Exception):
    """The npm files are missing or at the wrong version; the message says how to get them."""


@dataclass(frozen=True)
class VendorPackage:
    name: str
    version: str
    license: str | None
    root: Path  # the directory holding the package's files, by their relative names in VENDORED


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _from_package_data() -> dict[str, VendorPackage] | None:
    versions = PACKAGE_VENDOR_DIR / VERSIONS_FILE
    if not versions.is_file():
        return None
    meta = _read_json(versions)
    return {
        name: VendorPackage(name, info["version"], info.get("license"), PACKAGE_VENDOR_DIR / name)
        for name, info in meta.items()
    }


def _from_node_modules(root: Path) -> dict[str, VendorPackage]:
    pins = _read_json(root / "package.json")["dependencies"]
    found = {}
    for name, pinned in pins.items():
        meta_file = root / "node_modules" / name / "package.json"
        if not meta_file.is_file():
            raise VendorError(f"{meta_file.parent} is missing: run `npm ci` in {root}")
        meta = _read_json(meta_file)
        if meta.get("version") != pinned:
            raise VendorError(
                f"{name} {meta.get('version')} is installed but package.json pins {pinned}: run `npm ci`"
            )
        found[name] = VendorPackage(name, pinned, meta.get("license"), meta_file.parent)
    return found


def locate(node_modules_root: Path | None = None) -> dict[str, VendorPackage]:
    """The vendored packages: from `node_modules_root` if given, else package data, else the checkout."""
    if node_modules_root is None:
        packaged = _from_package_data()
        if packaged is not None:
            return packaged
        node_modules_root = CHECKOUT_ROOT
        if not (node_modules_root / "package.json").is_file():
            raise VendorError(
                "this installation has no page files (qwen35web/web/_vendor): reinstall the wheel"
            )
    return _from_node_modules(node_modules_root)


def _verify_integrity(data: bytes, integrity: str, what: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if digest != expected:
        raise VendorError(f"{what}: {algorithm} does not match package-lock.json's integrity")


def _tarball_url(name: str, version: str) -> str:
    # The lock records no `resolved` address here, so use the registry's own layout for tarballs.
    registry = os.environ.get("npm_config_registry", NPM_REGISTRY).rstrip("/")  # noqa: SIM112
    return f"{registry}/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"


def _tarball_members(name: str, lock: dict) -> tuple[dict, dict[str, bytes]]:
    entry = lock["packages"][f"node_modules/{name}"]
    url = entry.get("resolved") or _tarball_url(name, entry["version"])
    log.info("fetching %s", url)
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    _verify_integrity(data, entry["integrity"], url)
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile():
                # npm tarballs hold one top folder (usually `package/`).
                relative = member.name.split("/", 1)[1]
                extracted = archive.extractfile(member)
                if extracted is not None:
                    members[relative] = extracted.read()
    return json.loads(members["package.json"]), members


def fill_vendor_dir(target: Path, checkout: Path) -> dict[str, dict]:
    """Copy the pinned npm files into `target` (the wheel's `_vendor/`): from `checkout`'s node_modules when
    it holds the pinned versions, else from the registry tarballs package-lock.json pins (sha512-checked)."""
    lock = _read_json(checkout / "package-lock.json")
    try:
        local: dict[str, VendorPackage] | None = _from_node_modules(checkout)
    except VendorError:
        local = None
    versions = {}
    for name, (_, files) in VENDORED.items():
        if local is not None:
            root = local[name].root
            contents = {
                rel: (root / rel).read_bytes()
                for rel in (*files, "package.json", *LICENSE_FILES)
                if (root / rel).is_file()
            }
            meta = _read_json(root / "package.json")
        else:
            meta, members = _tarball_members(name, lock)
            contents = {
                rel: members[rel] for rel in (*files, "package.json", *LICENSE_FILES) if rel in members
            }
        missing = [rel for rel in files if rel not in contents]
        if missing:
            raise VendorError(f"{name} {meta.get('version')} lacks {', '.join(missing)}")
        for relative, data in contents.items():
            path = target / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        versions[name] = {"version": meta.get("version"), "license": meta.get("license")}
    (target / VERSIONS_FILE).write_text(json.dumps(versions, indent=2) + "\n", encoding="utf-8")
    return versions
