"""`qwen35web site build SITE_DIR [--bundle NAME=BUNDLE_DIR ...]`: assemble the static site.

Layout of the site (everything the page loads comes from it, nothing from elsewhere):

  index.html, example.html, favicon.svg         the pages (web/static/); their scripts and style in page/
  qwen35web.mjs, qwen35web.d.mts, errors.mjs    the embeddable module, types, errors; module/: its helpers
  worker/            the module's worker: Pyodide + onnxruntime-web, weight download and cache, images
  sw.js              the service worker, with the shell's file list and the site version filled in
  vendor/ort/        onnxruntime-web: the native WebGPU build, the wasm build, their .wasm files
  vendor/pyodide/    the Pyodide core and its standard library
  py/runtime.zip     qwen35web.runtime for Pyodide, with pure-Python jinja2 + markupsafe (no numpy there)
  models/index.json  the bundles by name, the first one the page's default
  models/NAME/       each bundle: manifest.json and the files it lists
  models/NAME~wasm/  optionally, the same model in the format the page loads on wasm (int8, q8)

The site is assembled in a temporary sibling directory and renamed into place, so a failed build
leaves the previous site as it was. An existing directory is replaced only if an earlier build made
it (it holds the marker file), never an arbitrary directory given by mistake.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from qwen35web.runtime.bundle_format import MANIFEST, WEBGPU_ONLY_OPS, ModelFacts
from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.manifest import load_local_manifest
from qwen35web.web.shell import ShellError, write_service_worker
from qwen35web.web.vendor import VENDORED, VendorError, VendorPackage, locate

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
SITE_MARKER = ".qwen35web-site"
RUNTIME_ARCHIVE = "py/runtime.zip"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # qwen35web/
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# The runtime's CPython-only part (onnxruntime, numpy, Pillow, the command lines) stays out of the
# browser: everything else under qwen35web/runtime/ is the portable core or the browser part.
_NATIVE_ONLY_DIR = "native"
# Pure-Python packages the runtime imports in Pyodide (chat templates), copied from this environment.
_VENDORED_PYTHON = ("jinja2", "markupsafe")
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same archive


class BuildError(Exception):
    """Bad input to the build; the message is one sentence for the command line."""


@dataclass
class SiteSpec:
    site_dir: Path
    bundles: list[tuple[str, Path]]
    notes: dict[str, str] = field(default_factory=dict)
    # Where the npm files come from: None = package data, else the checkout (see qwen35web.web.vendor);
    # a directory = a checkout root holding package.json and node_modules/.
    npm_root: Path | None = None
    # NAME -> the bundle the page loads instead when it runs on wasm (`--wasm-bundle NAME=DIR`).
    wasm_bundles: dict[str, Path] = field(default_factory=dict)


def parse_named(values: list[str], what: str) -> list[tuple[str, str]]:
    """`NAME=VALUE` arguments, in order; names must be plain and unique."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not rest:
            raise BuildError(f"{what} {value!r} must look like NAME={what.upper()}")
        if not NAME_PATTERN.match(name):
            raise BuildError(f"{what} name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
        if name in (n for n, _ in pairs):
            raise BuildError(f"{what} name {name!r} is given twice")
        pairs.append((name, rest))
    return pairs


def locate_vendored(npm_root: Path | None) -> dict[str, VendorPackage]:
    """The page's npm packages, at their pinned versions, or a BuildError saying how to get them."""
    try:
        return locate(npm_root)
    except VendorError as err:
        raise BuildError(str(err)) from None


def _model_facts(model: ModelFacts) -> ModelFacts:
    """A manifest's model facts without the checkpoint layout the export read them from."""
    return dataclasses.replace(model, model_type="", weight_prefix="")


def _check_bundles(spec: SiteSpec) -> None:
    if not spec.bundles:
        raise BuildError("give at least one --bundle NAME=BUNDLE_DIR")
    names = {name for name, _ in spec.bundles}
    for flag, named in (("--note", spec.notes), ("--wasm-bundle", spec.wasm_bundles)):
        for name in named:
            if name not in names:
                raise BuildError(f"{flag} for {name!r}, which is not a --bundle name")
    models = {}
    for name, path in spec.bundles:
        try:
            manifest = load_local_manifest(path, verify_hashes=True)
        except BundleError as err:
            raise BuildError(f"bundle {name!r}: {err}") from None
        models[name] = manifest.model
        if manifest.ops in WEBGPU_ONLY_OPS and name not in spec.wasm_bundles:
            raise BuildError(
                f"bundle {name!r} runs only on WebGPU (--ops {manifest.ops}): give --wasm-bundle {name}=DIR "
                "with an --ops fused export of the same model, for the page on wasm"
            )
    for name, path in spec.wasm_bundles.items():
        try:
            wasm_manifest = load_local_manifest(path, verify_hashes=True)
        except BundleError as err:
            raise BuildError(f"wasm bundle {name!r}: {err}") from None
        model = wasm_manifest.model
        if wasm_manifest.ops in WEBGPU_ONLY_OPS:
            raise BuildError(
                f"wasm bundle {name!r} was exported with --ops {wasm_manifest.ops}, which wasm cannot run"
            )
        if _model_facts(model) != _model_facts(models[name]):
            raise BuildError(f"wasm bundle {name!r} holds a different model from bundle {name!r}")


def _check_site_dir(site_dir: Path) -> None:
    if site_dir.exists() and not site_dir.is_dir():
        raise BuildError(f"{site_dir} exists and is not a directory")
    if site_dir.is_dir() and any(site_dir.iterdir()) and not (site_dir / SITE_MARKER).is_file():
        raise BuildError(
            f"{site_dir} is not empty and was not made by `qwen35web site build`; not replacing it"
        )
    try:
        site_dir.resolve().parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BuildError(f"cannot create {site_dir.resolve().parent}: {err.strerror}") from None


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where possible (weights can be large), else a copy; never a symlink out of the site."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _copy_vendored(packages: dict[str, VendorPackage], site: Path) -> None:
    """The npm files the page loads, and vendor/packages.json naming their versions and licences."""
    listing = {}
    for name, (destination, files) in VENDORED.items():
        package = packages[name]
        for relative in files:
            source = package.root / relative
            if not source.is_file():
                raise BuildError(f"{source} is missing: reinstall {name} {package.version}")
            _link_or_copy(source, site / destination / Path(relative).name)
        listing[name] = {"version": package.version, "license": package.license, "path": destination}
    (site / "vendor" / "packages.json").write_text(json.dumps(listing, indent=2) + "\n", encoding="utf-8")


def _package_dir(name: str) -> Path:
    found = importlib.util.find_spec(name)
    if found is None or not found.submodule_search_locations:
        raise BuildError(f"the Python package {name} is not installed (it is a dependency of this project)")
    return Path(next(iter(found.submodule_search_locations)))


def _license_files(distribution: str) -> list[tuple[str, bytes]]:
    files = metadata.distribution(distribution).files or []
    found = [f for f in files if "license" in f.name.lower() or "licence" in f.name.lower()]
    return [
        (f"licenses/{distribution}/{f.name}", f.read_binary()) for f in found if Path(f.locate()).is_file()
    ]


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def write_runtime_archive(target: Path) -> None:
    """qwen35web.runtime plus pure-Python jinja2/markupsafe (.py only: no compiled speedups in Pyodide)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    runtime_dir = PACKAGE_ROOT / "runtime"
    with zipfile.ZipFile(target, "w") as archive:
        _add(archive, "qwen35web/__init__.py", (PACKAGE_ROOT / "__init__.py").read_bytes())
        for path in sorted(runtime_dir.rglob("*.py")):
            # _generate*: the scripts that wrote the tokenizer's Unicode tables (development only).
            native_only = path.relative_to(runtime_dir).parts[0] == _NATIVE_ONLY_DIR
            if native_only or path.name.startswith("_generate"):
                continue
            _add(archive, path.relative_to(PACKAGE_ROOT.parent).as_posix(), path.read_bytes())
        for package in _VENDORED_PYTHON:
            package_dir = _package_dir(package)
            for path in sorted(package_dir.rglob("*.py")):
                _add(archive, f"{package}/{path.relative_to(package_dir).as_posix()}", path.read_bytes())
            for name, data in _license_files(package):
                _add(archive, name, data)


def _copy_bundle(bundle: Path, target: Path) -> int:
    manifest = load_local_manifest(bundle, verify_hashes=False)
    _link_or_copy(bundle / MANIFEST, target / MANIFEST)
    for entry in manifest.files.values():
        _link_or_copy(bundle / entry.path, target / entry.path)
    return sum(entry.size for entry in manifest.files.values())


WASM_SUFFIX = "~wasm"  # "~" is not allowed in a bundle name, so no clash with another model


def _write_models_index(spec: SiteSpec, site: Path) -> None:
    models = []
    for name, path in spec.bundles:
        size = _copy_bundle(path, site / "models" / name)
        entry: dict = {"name": name, "note": spec.notes.get(name, ""), "bytes": size}
        if name in spec.wasm_bundles:
            directory = name + WASM_SUFFIX
            wasm_size = _copy_bundle(spec.wasm_bundles[name], site / "models" / directory)
            entry["backends"] = {"wasm": {"dir": directory, "bytes": wasm_size}}
        models.append(entry)
    index = {"default": spec.bundles[0][0], "models": models}
    (site / "models" / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def _publish(staging: Path, site_dir: Path) -> None:
    if site_dir.exists():
        old = site_dir.with_name(f".{site_dir.name}.old-{os.getpid()}")
        os.rename(site_dir, old)
        os.rename(staging, site_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, site_dir)


def build_site(spec: SiteSpec) -> Path:
    """Assemble the site; raises BuildError (one sentence) on bad input, leaving nothing half-built."""
    _check_site_dir(spec.site_dir)
    packages = locate_vendored(spec.npm_root)
    _check_bundles(spec)
    parent = spec.site_dir.resolve().parent
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.site_dir.name}.partial-", dir=parent))
    try:
        shutil.copytree(STATIC_DIR, staging, dirs_exist_ok=True)
        _copy_vendored(packages, staging)
        write_runtime_archive(staging / RUNTIME_ARCHIVE)
        _write_models_index(spec, staging)
        try:
            version = write_service_worker(staging)
        except ShellError as err:
            raise BuildError(str(err)) from None
        marker = {
            "tool": "qwen35web site build",
            "version": version,
            "npm": {n: p.version for n, p in packages.items()},
        }
        (staging / SITE_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)
        _publish(staging, spec.site_dir.resolve())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.debug("built %s (default model %s)", spec.site_dir, spec.bundles[0][0])
    return spec.site_dir
