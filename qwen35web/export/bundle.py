"""The bundle: a directory that describes and checks itself, written atomically.

Everything is written into a temporary sibling directory first; only a complete bundle is renamed
into place. With `--force` an existing bundle is moved aside and deleted only after the new one
is in place, so a failed export never destroys what the user had.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx_ir as ir
from tqdm import tqdm

from qwen35web.export.errors import BadInputError
from qwen35web.runtime.bundle_format import (
    CHAT_TEMPLATE_FILE,
    CONFIG_FILE,
    MANIFEST,
    MAX_BUFFER_BYTES,
    MODEL_DATA_FILE,
    MODEL_FILE,
    OPTIONAL_MODEL_FILES,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILES,
    FileEntry,
    Manifest,
)
from qwen35web.runtime.manifest import sha256_file

log = logging.getLogger(__name__)

_PROVENANCE_PACKAGES = (
    "torch",
    "transformers",
    "onnx",
    "onnxscript",
    "onnx-ir",
    "onnxruntime",
    "safetensors",
)


def check_output_dir(out_dir: Path, force: bool) -> None:
    """Refuse, before any work, an output we may not write."""
    if out_dir.exists() and not force:
        raise BadInputError(f"output directory {out_dir} already exists (use --force to replace it)")
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"output path {out_dir} exists and is not a directory")
    parent = out_dir.resolve().parent
    if not parent.is_dir():
        raise BadInputError(f"parent directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"cannot write into {parent}: permission denied")


def check_tokenizer_files(model_dir: Path) -> None:
    missing = [name for name in TOKENIZER_FILES if not (model_dir / name).is_file()]
    if missing:
        raise BadInputError(f"{model_dir} has no {' or '.join(missing)}: the bundle needs the tokenizer")


@contextmanager
def staging_dir(out_dir: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary directory; on clean exit it becomes `out_dir`, on error it vanishes."""
    parent = out_dir.resolve().parent
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    except OSError as err:
        raise BadInputError(f"cannot write into {parent}: {err.strerror}") from None
    try:
        yield tmp
        _publish(tmp, out_dir.resolve(), force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, out_dir: Path, force: bool) -> None:
    os.chmod(tmp, 0o755)
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    if not force:
        raise BadInputError(f"output directory {out_dir} appeared during the export; not replacing it")
    backup = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.rename(out_dir, backup)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        os.rename(backup, out_dir)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def save_graph(model: ir.Model, bundle: Path, max_data_file_bytes: int = MAX_BUFFER_BYTES) -> list[str]:
    """Write model.onnx and its external data (split at `max_data_file_bytes`); returns the data files."""
    files: set[str] = set()
    with tqdm(desc="writing weights", unit="tensor", disable=None, leave=False) as bar:

        def progress(tensor: Any, info: ir.external_data.CallbackInfo) -> None:
            bar.total = info.total
            files.add(info.filename)
            bar.update()

        ir.save(
            model,
            bundle / MODEL_FILE,
            external_data=MODEL_DATA_FILE,
            max_shard_size_bytes=max_data_file_bytes,
            callback=progress,
        )
    return sorted(files)


def copy_model_files(model_dir: Path, bundle: Path) -> None:
    for name in (CONFIG_FILE, *TOKENIZER_FILES, *OPTIONAL_MODEL_FILES):
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, bundle / name)


def chat_template(model_dir: Path) -> str | None:
    jinja = model_dir / CHAT_TEMPLATE_FILE
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        config = json.loads((model_dir / TOKENIZER_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    template = config.get("chat_template") if isinstance(config, dict) else None
    return template if isinstance(template, str) else None


def file_table(bundle: Path) -> dict[str, FileEntry]:
    """Every file of the bundle but the manifest, with its size and sha256."""
    table = {}
    for path in sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != MANIFEST):
        name = path.relative_to(bundle).as_posix()
        table[name] = FileEntry(name, path.stat().st_size, sha256_file(path))
    return table


def provenance() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in _PROVENANCE_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        tool_version = metadata.version("qwen35-web")
    except metadata.PackageNotFoundError:
        tool_version = "0+unknown"
    return {
        "tool": "qwen35-web export",
        "tool_version": tool_version,
        "python": platform.python_version(),
        "libraries": versions,
    }


def write_manifest(bundle: Path, manifest: Manifest) -> None:
    """Write manifest.json, after reading it back as every reader will (a writer bug fails here)."""
    data = manifest.to_json()
    if Manifest.from_json(data) != manifest:
        raise AssertionError("the manifest does not survive its own reader")
    (bundle / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
