"""The vision tower's facts, read from a `qwen3_5` config.json's `vision_config` and checked once.

Defaults are transformers' `Qwen3_5VisionConfig` (5.23): a checkpoint's config may leave any field
out. Qwen3.5's tower has no deepstack mergers (transformers deletes them from the Qwen3-VL tower it
derives from), so only the final merger's output leaves the graph.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from qwen35web.export.errors import BadInputError

WEIGHT_PREFIX = "model.visual."
# transformers' ACT2FN names whose ONNX form the tower module writes out (see vision_model._activation).
SUPPORTED_ACTIVATIONS = ("gelu_pytorch_tanh", "gelu", "gelu_new", "quick_gelu", "silu")
_DEFAULTS: dict[str, Any] = {
    "depth": 27,
    "hidden_size": 1152,
    "hidden_act": "gelu_pytorch_tanh",
    "intermediate_size": 4304,
    "num_heads": 16,
    "in_channels": 3,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "out_hidden_size": 3584,
    "num_position_embeddings": 2304,
}
_DEFAULT_ROPE_THETA = 10000.0


@dataclass(frozen=True)
class VisionSpec:
    """Everything the vision exporter needs: shapes, activation and the rotary base."""

    depth: int
    hidden_size: int
    hidden_act: str
    intermediate_size: int
    num_heads: int
    in_channels: int
    patch_size: int
    spatial_merge_size: int
    temporal_patch_size: int
    out_hidden_size: int
    num_position_embeddings: int
    rope_theta: float

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Values per patch row of `pixel_values`: C * T * P * P."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def merge_unit(self) -> int:
        """Patches merged into one text token: m * m."""
        return self.spatial_merge_size**2

    @property
    def grid_side(self) -> int:
        """Side of the square learned position-embedding grid."""
        return math.isqrt(self.num_position_embeddings)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _positive_int(config: dict[str, Any], name: str) -> int:
    value = config.get(name, _DEFAULTS[name])
    if isinstance(value, list | tuple) and len(value) == 2 and value[0] == value[1]:
        value = value[0]  # patch sizes may be written as [p, p]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadInputError(f"config.json: vision_config.{name} must be a positive integer, got {value!r}")
    return value


def _rope_theta(config: dict[str, Any]) -> float:
    rope = config.get("rope_parameters") or {}
    if not isinstance(rope, dict):
        raise BadInputError("config.json: vision_config.rope_parameters must be an object")
    if rope.get("rope_type", "axial") != "axial":
        raise BadInputError(f"config.json: vision rope_type {rope.get('rope_type')!r} is not supported")
    theta = rope.get("rope_theta", config.get("rope_theta", _DEFAULT_ROPE_THETA))
    if not isinstance(theta, int | float) or isinstance(theta, bool) or theta <= 0:
        raise BadInputError(f"config.json: vision rope_theta must be a positive number, got {theta!r}")
    return float(theta)


def vision_spec_from_config(config: dict[str, Any]) -> VisionSpec | None:
    """The tower of a `qwen3_5` config, or None for a text-only config (no `vision_config`)."""
    vision = config.get("vision_config")
    if vision is None:
        return None
    if not isinstance(vision, dict):
        raise BadInputError("config.json: 'vision_config' must be an object")
    ints = {name: _positive_int(vision, name) for name, value in _DEFAULTS.items() if isinstance(value, int)}
    hidden_act = vision.get("hidden_act", _DEFAULTS["hidden_act"])
    if hidden_act not in SUPPORTED_ACTIVATIONS:
        supported = ", ".join(SUPPORTED_ACTIVATIONS)
        raise BadInputError(f"config.json: vision hidden_act {hidden_act!r} is not supported ({supported})")
    spec = VisionSpec(hidden_act=hidden_act, rope_theta=_rope_theta(vision), **ints)
    _check_consistency(spec, config)
    return spec


def _check_consistency(spec: VisionSpec, config: dict[str, Any]) -> None:
    if spec.hidden_size % spec.num_heads:
        raise BadInputError("config.json: vision hidden_size must be a multiple of num_heads")
    if spec.head_dim % 4:
        # The 2-D rotary gives a quarter of each head to the row and a quarter to the column frequencies.
        raise BadInputError(
            "config.json: the vision head size (hidden_size / num_heads) must be a multiple of 4"
        )
    if spec.grid_side**2 != spec.num_position_embeddings:
        raise BadInputError("config.json: vision num_position_embeddings must be a perfect square")
    text = config.get("text_config")
    text_hidden = text.get("hidden_size") if isinstance(text, dict) else None
    if text_hidden is not None and text_hidden != spec.out_hidden_size:
        raise BadInputError(
            f"config.json: vision out_hidden_size {spec.out_hidden_size} differs from the text hidden_size "
            f"{text_hidden}"
        )
