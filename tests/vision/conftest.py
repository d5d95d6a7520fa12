"""Vision-language checkpoints with real random towers of several unusual shapes, and their graphs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.checkpoints import TINY_VISION_CONFIG, write_vl_checkpoint

# Each differs from the others in depth, width, heads (head size), patch, merge, temporal patch,
# activation, position grid and rotary base.
TOWERS: dict[str, dict] = {
    "tiny": TINY_VISION_CONFIG,
    "merge3": {
        "depth": 1,
        "hidden_size": 48,
        "intermediate_size": 40,
        "num_heads": 4,
        "hidden_act": "gelu",
        "patch_size": 3,
        "temporal_patch_size": 2,
        "spatial_merge_size": 3,
        "num_position_embeddings": 49,
    },
    "merge1-deep": {
        "depth": 3,
        "hidden_size": 24,
        "intermediate_size": 56,
        "num_heads": 1,
        "hidden_act": "silu",
        "patch_size": 2,
        "temporal_patch_size": 1,
        "spatial_merge_size": 1,
        "num_position_embeddings": 16,
        "rope_parameters": {"rope_type": "axial", "rope_theta": 1000.0},
    },
    "many-heads": {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_heads": 8,
        "hidden_act": "quick_gelu",
        "patch_size": 5,
        "temporal_patch_size": 2,
        "spatial_merge_size": 2,
        "num_position_embeddings": 100,
    },
}

_CHECKPOINTS: dict[str, Path] = {}


@pytest.fixture(scope="session")
def vl_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """name -> a VL checkpoint directory with that tower (built once per session)."""

    def get(name: str) -> Path:
        if name not in _CHECKPOINTS:
            out = tmp_path_factory.mktemp("vl") / name
            _CHECKPOINTS[name] = write_vl_checkpoint(out, seed=3, vision_config=TOWERS[name])
        return _CHECKPOINTS[name]

    return get


def reference_tower(checkpoint: Path):
    """transformers' own vision model, loaded from the checkpoint as the whole VL model."""
    from transformers import Qwen3_5ForConditionalGeneration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Qwen3_5ForConditionalGeneration.from_pretrained(checkpoint)
    return model.eval().model.visual


_GRAPHS: dict[tuple[str, str], Any] = {}


@pytest.fixture(scope="session")
def vision_graph(vl_checkpoint, tmp_path_factory: pytest.TempPathFactory):
    """(tower, dtype) -> its VisionExport (exported once per session)."""
    from qwen35web.export.vision.export import export_vision

    def get(name: str, dtype: str = "fp32"):
        if (name, dtype) not in _GRAPHS:
            out = tmp_path_factory.mktemp("vision") / f"{name}-{dtype}"
            _GRAPHS[name, dtype] = export_vision(vl_checkpoint(name), out, dtype)
        return _GRAPHS[name, dtype]

    return get
