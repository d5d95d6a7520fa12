"""The bundle's manifest.json: parsed once, checked thoroughly, stdlib only (also runs in Pyodide).

Every malformed input raises `BundleError` with one readable sentence; nothing else escapes,
whatever JSON the manifest holds.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen35web.runtime.errors import BundleError

SUPPORTED_FORMAT_VERSIONS = (1,)
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
SAMPLER_FILE = "sampler.onnx"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, POSIX, inside the bundle
    size: int
    sha256: str


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # "float32", "float16", "int64"
    shape: tuple[int | str, ...]  # ints are static, strings name symbolic axes


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: dict[str, Any]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    ops: str
    dtype: str
    files: dict[str, FileEntry]
    chat_template: str | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None
    external_data: tuple[str, ...] = ()  # model.onnx's weight files, in the bundle

    @property
    def vocab_size(self) -> int:
        return int(self.model["vocab_size"])

    @property
    def max_positions(self) -> int:
        return int(self.model.get("max_position_embeddings", 262144))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BundleError(f"manifest.json: {message}")


def _object(value: Any, message: str) -> dict[str, Any]:
    _require(isinstance(value, dict), message)
    return value  # type: ignore[no-any-return]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_relative_path(path: Any) -> str:
    """A bundle file name: relative, POSIX, normalised, never escaping the bundle."""
    _require(isinstance(path, str) and path != "", "a file name must be a non-empty string")
    normal = posixpath.normpath(path)
    escapes = normal.startswith("../") or normal == ".." or normal.startswith("/") or "\\" in path
    _require(
        not escapes and normal == path and ":" not in path and "\x00" not in path,
        f"file path {path!r} is not a plain relative path inside the bundle",
    )
    return path


def _file_entry(path: Any, info: Any) -> FileEntry:
    path = check_relative_path(path)
    _require(isinstance(info, dict), f"entry for {path!r} must be an object")
    size, digest = info.get("size"), info.get("sha256")
    _require(_is_int(size) and size >= 0, f"entry for {path!r} needs a non-negative integer 'size'")
    valid_digest = isinstance(digest, str) and len(digest) == 64
    _require(
        valid_digest and all(c in "0123456789abcdef" for c in digest),
        f"entry for {path!r} needs a 64-hex-digit 'sha256'",
    )
    return FileEntry(path, size, digest)


def _tensor_spec(item: Any) -> TensorSpec:
    _require(isinstance(item, dict), "each io entry must be an object")
    name, dtype, shape = item.get("name"), item.get("dtype"), item.get("shape")
    _require(isinstance(name, str) and name != "", "each io entry needs a 'name'")
    _require(dtype in ("float32", "float16", "int64"), f"io entry {name!r} has unsupported dtype {dtype!r}")
    _require(
        isinstance(shape, list) and all(_is_int(d) or isinstance(d, str) for d in shape),
        f"io entry {name!r} needs a 'shape' list of ints and names",
    )
    return TensorSpec(name, dtype, tuple(shape))


def _io(data: dict[str, Any]) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    io = _object(data.get("io"), "'io' must be an object with 'inputs' and 'outputs'")
    inputs, outputs = io.get("inputs"), io.get("outputs")
    _require(
        isinstance(inputs, list) and isinstance(outputs, list), "'io' needs 'inputs' and 'outputs' lists"
    )
    return tuple(_tensor_spec(i) for i in inputs or []), tuple(_tensor_spec(o) for o in outputs or [])


def _model_facts(data: dict[str, Any]) -> dict[str, Any]:
    model = _object(data.get("model"), "'model' must be an object")
    for key in ("vocab_size", "num_layers", "hidden_size"):
        _require(_is_int(model.get(key)) and model[key] > 0, f"model.{key} must be a positive integer")
    layer_types = model.get("layer_types")
    _require(
        isinstance(layer_types, list) and len(layer_types) == model["num_layers"],
        "model.layer_types must list every layer",
    )
    return model


def parse_manifest(data: Any) -> Manifest:
    _require(isinstance(data, dict), "top level must be an object")
    version = data.get("format_version")
    _require(_is_int(version), "'format_version' must be an integer")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        readable = ", ".join(str(v) for v in SUPPORTED_FORMAT_VERSIONS)
        raise BundleError(f"manifest.json: unknown format_version {version} (this runtime reads {readable})")
    files = data.get("files")
    _require(isinstance(files, dict), "'files' must be an object")
    entries = {path: _file_entry(path, info) for path, info in files.items()}
    for required in (MODEL_FILE, TOKENIZER_FILE):
        _require(required in entries, f"'files' does not list {required}")
    eos = data.get("eos_token_ids", [])
    _require(isinstance(eos, list) and all(_is_int(i) for i in eos), "'eos_token_ids' must be a list of ints")
    pad = data.get("pad_token_id")
    _require(pad is None or _is_int(pad), "'pad_token_id' must be an int or null")
    template = data.get("chat_template")
    _require(template is None or isinstance(template, str), "'chat_template' must be a string or null")
    _require(data.get("ops") in ("fused", "portable"), "'ops' must be 'fused' or 'portable'")
    _require(isinstance(data.get("dtype"), str), "'dtype' must be a string")
    inputs, outputs = _io(data)
    external = data.get("external_data", [])
    _require(
        isinstance(external, list) and all(isinstance(p, str) and p in entries for p in external),
        "'external_data' must list files that 'files' lists",
    )
    return Manifest(
        version,
        _model_facts(data),
        inputs,
        outputs,
        data["ops"],
        data["dtype"],
        entries,
        template,
        tuple(eos),
        pad,
        tuple(external),
    )


def parse_manifest_text(text: str | bytes) -> Manifest:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise BundleError("manifest.json is not valid JSON") from None
    return parse_manifest(data)


def verify_bytes(entry: FileEntry, data: bytes) -> None:
    """Integrity of one file's content against its manifest entry."""
    if len(data) != entry.size:
        raise BundleError(f"{entry.path}: size {len(data)} bytes, manifest says {entry.size} (truncated?)")
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise BundleError(f"{entry.path}: sha256 does not match the manifest (corrupt file)")


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
