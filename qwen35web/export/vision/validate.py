"""Check an exported vision graph against transformers' own tower, on grids of every kind.

    report = compare_vision(model_dir, graph_path, dtype)   # {"passed", "tolerance", "grids": {...}}

The reference is `Qwen3_5ForConditionalGeneration.from_pretrained(model_dir).model.visual`; inputs
are seeded uniform pixel values in [-1, 1] (the range normalized pixels take). Each format's bound
is its `tolerance` in formats.VISION_FORMATS: fp32 must agree to 1e-4 max-abs; the lower formats are
held to a cosine similarity instead (their error is their own).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from qwen35web.export.formats import VISION_FORMATS

# In merge blocks (t, h / m, w / m); the last entry is several images in one call.
GRIDS: dict[str, list[tuple[int, int, int]]] = {
    "square": [(1, 4, 4)],
    "tall": [(1, 6, 2)],
    "wide": [(1, 2, 7)],
    "smallest": [(1, 1, 1)],
    "several": [(1, 3, 2), (1, 1, 1), (1, 2, 5)],
}


def _reference(model_dir: Path) -> Any:
    from transformers import Qwen3_5ForConditionalGeneration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Qwen3_5ForConditionalGeneration.from_pretrained(model_dir)
    return model.eval().model.visual


def _inputs(blocks: list[tuple[int, int, int]], merge: int, patch_dim: int, seed: int):
    grid = np.array([(t, h * merge, w * merge) for t, h, w in blocks], dtype=np.int64)
    pixels = np.random.default_rng(seed).uniform(-1, 1, (int(grid.prod(axis=1).sum()), patch_dim))
    return pixels.astype(np.float32), grid


def compare_vision(model_dir: Path, graph: Path, dtype: str = "fp32") -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    reference = _reference(model_dir)
    config = reference.config
    patch_dim = config.in_channels * config.temporal_patch_size * config.patch_size**2
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    tolerance = dict(VISION_FORMATS[dtype].tolerance)
    grids: dict[str, dict[str, float]] = {}
    for seed, (name, blocks) in enumerate(GRIDS.items()):
        pixels, grid = _inputs(blocks, config.spatial_merge_size, patch_dim, seed)
        with torch.no_grad():
            expected = reference(torch.from_numpy(pixels), grid_thw=torch.from_numpy(grid)).pooler_output
        (got,) = session.run(None, {"pixel_values": pixels, "image_grid_thw": grid})
        want = expected.numpy().astype(np.float64)
        have = got.astype(np.float64)
        cosine = float((want * have).sum() / (np.linalg.norm(want) * np.linalg.norm(have)))
        grids[name] = {"max_abs": float(np.abs(want - have).max()), "cosine": cosine}
    passed = all(
        g["max_abs"] <= tolerance.get("max_abs", np.inf) and g["cosine"] >= tolerance.get("min_cosine", -1)
        for g in grids.values()
    )
    return {"passed": passed, "dtype": dtype, "tolerance": tolerance, "grids": grids}
