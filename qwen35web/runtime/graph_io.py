"""Graph I/O names: the one place they are defined (contract of DESIGN.md).

The names are transformers.js's names for Qwen3.5 caches, so the bundle also works with runtimes
that already know them. Everything else (the exporter, the passes, the manifest, the runtimes)
asks this module instead of spelling a name. It lives in runtime_py, stdlib only, because the
runtime also runs in Pyodide; the exporter imports it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
POSITION_IDS = "position_ids"
LOGITS = "logits"

# The bundle's sampler graph (see export/sampler_graph.py).
SAMPLER_LOGITS, SAMPLER_PENALTY_IDS, SAMPLER_PENALTY, SAMPLER_TEMPERATURE, SAMPLER_K = (
    "logits",
    "penalty_ids",
    "penalty",
    "temperature",
    "k",
)
SAMPLER_TOP_LOGITS, SAMPLER_TOP_IDS, SAMPLER_LOG_NORMALIZER = "top_logits", "top_ids", "log_normalizer"
SAMPLER_INPUTS = (SAMPLER_LOGITS, SAMPLER_PENALTY_IDS, SAMPLER_PENALTY, SAMPLER_TEMPERATURE, SAMPLER_K)
SAMPLER_OUTPUTS = (SAMPLER_TOP_LOGITS, SAMPLER_TOP_IDS, SAMPLER_LOG_NORMALIZER)

LINEAR_ATTENTION = "linear_attention"
FULL_ATTENTION = "full_attention"

StateKind = Literal["conv", "recurrent", "key", "value"]


def past_conv(layer: int) -> str:
    return f"past_conv.{layer}"


def past_recurrent(layer: int) -> str:
    return f"past_recurrent.{layer}"


def past_key(layer: int) -> str:
    return f"past_key_values.{layer}.key"


def past_value(layer: int) -> str:
    return f"past_key_values.{layer}.value"


def present_conv(layer: int) -> str:
    return f"present_conv.{layer}"


def present_recurrent(layer: int) -> str:
    return f"present_recurrent.{layer}"


def present_key(layer: int) -> str:
    return f"present.{layer}.key"


def present_value(layer: int) -> str:
    return f"present.{layer}.value"


@dataclass(frozen=True)
class StateIO:
    """One piece of per-layer state: the graph input it enters by and the output it leaves by."""

    layer: int
    kind: StateKind
    past: str
    present: str


def state_io(layer_types: list[str]) -> list[StateIO]:
    """Per-layer states in graph order: layer by layer, (conv, recurrent) or (key, value)."""
    states: list[StateIO] = []
    for i, layer_type in enumerate(layer_types):
        if layer_type == LINEAR_ATTENTION:
            states.append(StateIO(i, "conv", past_conv(i), present_conv(i)))
            states.append(StateIO(i, "recurrent", past_recurrent(i), present_recurrent(i)))
        elif layer_type == FULL_ATTENTION:
            states.append(StateIO(i, "key", past_key(i), present_key(i)))
            states.append(StateIO(i, "value", past_value(i), present_value(i)))
        else:
            raise ValueError(f"unknown layer type {layer_type!r} at layer {i}")
    return states


def input_names(layer_types: list[str]) -> list[str]:
    return [INPUT_IDS, ATTENTION_MASK, POSITION_IDS] + [s.past for s in state_io(layer_types)]


def output_names(layer_types: list[str]) -> list[str]:
    return [LOGITS] + [s.present for s in state_io(layer_types)]


_KV_PAST, _KV_PRESENT = "past_key_values.", "present."
_PAST, _PRESENT = "past_", "present_"


def is_state_input(name: str) -> bool:
    return name.startswith(_PAST)


def present_for(past_name: str) -> str:
    """The output that carries a state input's next value (past_conv.0 -> present_conv.0)."""
    if past_name.startswith(_KV_PAST):
        return _KV_PRESENT + past_name.removeprefix(_KV_PAST)
    if past_name.startswith(_PAST):
        return _PRESENT + past_name.removeprefix(_PAST)
    raise ValueError(f"{past_name!r} is not a state input")
