"""Checkpoint -> vision graph: read `model.visual.*`, build the tower, trace it, save it.

    export_vision(model_dir, out_dir, dtype="fp32") -> VisionExport

The graph is written as `vision_encoder.onnx` with its weights in `vision_encoder.onnx_data` (the
names transformers.js expects). Weights over 1 GiB (the 4B/9B tower in fp32) are split into
onnx-ir's numbered files, `vision_encoder-00001-of-00002.onnx_data`, ...: transformers.js would
want `vision_encoder.onnx_data`, `vision_encoder.onnx_data_1`, ... there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx_ir as ir
import torch

from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.config import read_config_json
from qwen35web.export.errors import BadInputError
from qwen35web.export.formats import VISION_FORMATS
from qwen35web.export.vision.config import WEIGHT_PREFIX, VisionSpec, vision_spec_from_config
from qwen35web.export.vision.precision import quantize_vision
from qwen35web.export.vision.trace import trace_vision
from qwen35web.export.vision.vision_model import VisionTower
from qwen35web.runtime.bundle_format import MAX_BUFFER_BYTES

log = logging.getLogger(__name__)

VISION_FILE = "vision_encoder.onnx"


@dataclass(frozen=True)
class VisionExport:
    spec: VisionSpec
    dtype: str
    graph: Path  # the .onnx file
    data_files: tuple[str, ...]  # external weight files beside it

    def total_bytes(self) -> int:
        return self.graph.stat().st_size + sum(
            (self.graph.parent / f).stat().st_size for f in self.data_files
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.graph.name,
            "data_files": list(self.data_files),
            "dtype": self.dtype,
            "bytes": self.total_bytes(),
            "vision": self.spec.to_json(),
        }


def expected_shapes(spec: VisionSpec) -> dict[str, tuple[int, ...]]:
    """The checkpoint tensors the tower reads (names without the `model.visual.` prefix)."""
    with torch.device("meta"):
        module = VisionTower(spec)
    return {name: tuple(param.shape) for name, param in module.state_dict().items()}


def load_tower(model_dir: Path, dtype: torch.dtype = torch.float32) -> VisionTower:
    """The checkpoint's tower with its weights; BadInputError if there is none or it does not fit."""
    spec = vision_spec_from_config(read_config_json(model_dir))
    if spec is None:
        raise BadInputError(f"{model_dir / 'config.json'} has no vision_config: a text-only checkpoint")
    checkpoint = Checkpoint(model_dir)
    expected = expected_shapes(spec)
    checkpoint.check_expected({WEIGHT_PREFIX + name: shape for name, shape in expected.items()})
    unknown = sorted(
        n
        for n in checkpoint.entries
        if n.startswith(WEIGHT_PREFIX) and n[len(WEIGHT_PREFIX) :] not in expected
    )
    if unknown:
        # e.g. a Qwen3-VL tower's deepstack mergers: ignoring them would export a different model.
        raise BadInputError(f"vision weights this exporter does not know: {', '.join(unknown[:3])}")
    tower = VisionTower(spec)
    state = {name: checkpoint.load(WEIGHT_PREFIX + name, dtype) for name in expected}
    tower.load_state_dict(state, strict=True)
    return tower.to(dtype).eval()


def build_vision_graph(model_dir: Path, dtype: str = "fp32") -> tuple[VisionSpec, ir.Model]:
    if dtype not in VISION_FORMATS:
        raise BadInputError(f"vision dtype must be one of {', '.join(VISION_FORMATS)}, got {dtype!r}")
    vision_format = VISION_FORMATS[dtype]
    tower = load_tower(model_dir, vision_format.trace_dtype)
    model = trace_vision(tower)
    if vision_format.quantize is not None:
        model = quantize_vision(model, dtype)
    return tower.spec, model


def external_data_files(graph: Path) -> tuple[str, ...]:
    """The external weight files an .onnx file names (read from its initializers, not guessed)."""
    import onnx

    proto = onnx.load(str(graph), load_external_data=False)
    files = {
        entry.value
        for tensor in proto.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return tuple(sorted(files))


def save_vision_graph(model: ir.Model, out_dir: Path, file_name: str = VISION_FILE) -> tuple[str, ...]:
    """Write the graph and its external data into out_dir; returns the data files' names.

    Weights over 1 GiB are split into numbered files (onnx-ir's naming). An existing graph of that
    name is not overwritten."""
    path = out_dir / file_name
    if path.exists():
        raise BadInputError(f"{path} already exists")
    out_dir.mkdir(parents=True, exist_ok=True)
    ir.save(model, path, external_data=file_name + "_data", max_shard_size_bytes=MAX_BUFFER_BYTES)
    return external_data_files(path)


def export_vision(
    model_dir: Path, out_dir: Path, dtype: str = "fp32", file_name: str = VISION_FILE
) -> VisionExport:
    spec, model = build_vision_graph(model_dir, dtype)
    log.info("writing %s", out_dir / file_name)
    data_files = save_vision_graph(model, out_dir, file_name)
    return VisionExport(spec, dtype, out_dir / file_name, data_files)
