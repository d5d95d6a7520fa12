"""Describe any exported decoder graph (ours or onnxruntime-genai's) by its own I/O metadata.

The two exporters name their caches differently (ours: `past_conv.N`, genai: `past.N.conv`) and
genai's position_ids are rank 3 (M-RoPE: [3, B, T]). A `GraphSpec` is the JSON-able summary both
the native timer and the browser harness use to build feeds, so neither hard-codes a convention.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

# past -> present output names, for both conventions.
_PRESENT_RULES = [
    (re.compile(r"^past_conv\.(\d+)$"), "present_conv.{0}"),
    (re.compile(r"^past_recurrent\.(\d+)$"), "present_recurrent.{0}"),
    (re.compile(r"^past_key_values\.(\d+)\.(key|value)$"), "present.{0}.{1}"),
    (re.compile(r"^past\.(\d+)\.(conv|recurrent)$"), "present.{0}.{1}"),
]


@dataclass(frozen=True)
class StateSpec:
    past: str
    present: str
    dtype: str  # "float32" | "float16"
    dims: list[int | str]  # ints, or "batch" / "past" placeholders
    grows: bool  # key/value caches grow with the past length


@dataclass(frozen=True)
class GraphSpec:
    position_rank: int  # 2: [B, T]; 3: [3, B, T]
    states: list[StateSpec]
    logits: str


def _present_name(past: str) -> str | None:
    for pattern, template in _PRESENT_RULES:
        match = pattern.match(past)
        if match:
            return template.format(*match.groups())
    return None


def _head_dim(model_path: Path) -> int | None:
    """Genai leaves the KV head size symbolic (`kv_cache_dim`); its genai_config.json states it."""
    config = model_path.parent / "genai_config.json"
    if config.exists():
        return int(json.loads(config.read_text())["model"]["decoder"]["head_size"])
    config = model_path.parent / "config.json"
    if config.exists():
        data = json.loads(config.read_text())
        return int(data.get("text_config", data).get("head_dim", 0)) or None
    return None


def _state_dims(shape: list, grows: bool, head_dim: int | None) -> list[int | str]:
    dims: list[int | str] = ["batch"]
    for index, dim in enumerate(shape[1:], start=1):
        if isinstance(dim, int):
            dims.append(dim)
        elif grows and index == 2:
            dims.append("past")  # [B, Hkv, P, D]
        elif head_dim is not None:
            dims.append(head_dim)
        else:
            raise ValueError(f"cannot resolve symbolic state dim {dim!r}")
    return dims


def describe(model_path: Path) -> GraphSpec:
    """Read the graph's inputs/outputs (no session run) and summarise its feeds."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    head_dim = _head_dim(model_path)
    states: list[StateSpec] = []
    position_rank = 2
    for value in graph.input:
        tensor_type = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor_type.shape.dim]
        if value.name == "position_ids":
            position_rank = len(shape)
            continue
        present = _present_name(value.name)
        if present is None:
            continue
        grows = value.name.endswith((".key", ".value"))
        dtype = "float16" if tensor_type.elem_type == onnx.TensorProto.FLOAT16 else "float32"
        states.append(StateSpec(value.name, present, dtype, _state_dims(shape, grows, head_dim), grows))
    return GraphSpec(position_rank, states, "logits")


def spec_json(spec: GraphSpec) -> dict:
    return asdict(spec)
