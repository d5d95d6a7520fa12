"""Lazy access to a checkpoint's safetensors weights, checked before anything is loaded.

Only headers are read up front: every expected tensor must exist with the shape the config
implies and every file must be as long as its header says (a truncated download fails here, with
the file's name, not halfway through an export). Tensors are then read one at a time, so the
export holds a single copy of the weights.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from qwen35web.export.errors import BadInputError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class TensorEntry:
    file: Path
    dtype: str
    shape: tuple[int, ...]


def _read_header(path: Path) -> dict[str, TensorEntry]:
    """Parse one safetensors header and check that the file holds every byte it promises."""
    size = path.stat().st_size
    with path.open("rb") as f:
        raw_len = f.read(8)
        if len(raw_len) < 8:
            raise BadInputError(f"{path.name} is truncated (no safetensors header)")
        (header_len,) = struct.unpack("<Q", raw_len)
        if header_len > min(size - 8, 100_000_000):
            raise BadInputError(f"{path.name} is truncated or not a safetensors file")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadInputError(f"{path.name} has a corrupt safetensors header") from None
    entries: dict[str, TensorEntry] = {}
    data_end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise BadInputError(f"{path.name} has a corrupt entry for {name!r}") from None
        numel = 1
        for dim in shape:
            numel *= dim
        if dtype in _DTYPES and end - start != numel * _DTYPES[dtype]:
            raise BadInputError(f"{path.name}: tensor {name!r} has inconsistent size in its header")
        data_end = max(data_end, end)
        entries[name] = TensorEntry(path, dtype, shape)
    if 8 + header_len + data_end > size:
        missing = 8 + header_len + data_end - size
        raise BadInputError(f"{path.name} is truncated ({missing} bytes missing)")
    return entries


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise BadInputError(f"{index} is not a valid safetensors index") from None
        files = [model_dir / name for name in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise BadInputError(f"weight files named in {INDEX_FILE} are missing: {', '.join(missing)}")
        return files
    single = model_dir / SINGLE_FILE
    if single.is_file():
        return [single]
    found = sorted(model_dir.glob("*.safetensors"))
    if found:
        return found
    raise BadInputError(f"no safetensors weights in {model_dir}")


class Checkpoint:
    """The tensors of a checkpoint, by name, read from disk only when asked for."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self.entries: dict[str, TensorEntry] = {}
        for path in _weight_files(model_dir):
            self.entries.update(_read_header(path))

    def check_expected(self, expected: dict[str, tuple[int, ...]]) -> None:
        """Every expected tensor is present with its shape (one message naming the first problem)."""
        for name, shape in expected.items():
            entry = self.entries.get(name)
            if entry is None:
                raise BadInputError(f"weights do not match config.json: tensor {name!r} is missing")
            if entry.shape != tuple(shape):
                raise BadInputError(
                    f"weights do not match config.json: {name!r} has shape {list(entry.shape)}, "
                    f"config implies {list(shape)}"
                )
            if entry.dtype not in ("F32", "F16", "BF16"):
                raise BadInputError(f"tensor {name!r} has unsupported dtype {entry.dtype}")

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def load(self, name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        entry = self.entries[name]
        with safe_open(str(entry.file), framework="pt") as f:
            return f.get_tensor(name).to(dtype)

    def iter_tensors(self, names: list[str], dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
        for name in names:
            yield name, self.load(name, dtype)
