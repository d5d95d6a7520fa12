"""The exported vision graph against transformers' Qwen3_5VisionModel, fp32, in onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from qwen35web.export.errors import BadInputError
from qwen35web.export.vision.config import vision_spec_from_config
from qwen35web.export.vision.export import load_tower
from tests.checkpoints import write_vl_checkpoint
from tests.vision.conftest import TOWERS, reference_tower

TOLERANCE = 1e-4  # max-abs, fp32
# Grids in merge blocks (t, h / m, w / m); each list is one call.
GRIDS = {
    "square": [(1, 4, 4)],
    "tall": [(1, 7, 2)],
    "wide": [(1, 2, 9)],
    "smallest": [(1, 1, 1)],
    "several": [(1, 3, 5), (1, 1, 1), (1, 6, 2), (1, 2, 2)],
    "two-frames": [(2, 2, 3)],
}


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(params=list(TOWERS))
def exported(request, vl_checkpoint, vision_graph):
    return vl_checkpoint(request.param), vision_graph(request.param)


def _inputs(blocks: list[tuple[int, int, int]], merge: int, patch_dim: int, seed: int):
    grid = np.array([(t, h * merge, w * merge) for t, h, w in blocks], dtype=np.int64)
    patches = int(grid.prod(axis=1).sum())
    pixels = np.random.default_rng(seed).uniform(-1, 1, (patches, patch_dim)).astype(np.float32)
    return pixels, grid


def test_fp32_matches_transformers(exported):
    checkpoint, result = exported
    reference = reference_tower(checkpoint)
    session = _session(result.graph)
    spec = result.spec
    for seed, (name, blocks) in enumerate(GRIDS.items()):
        pixels, grid = _inputs(blocks, spec.spatial_merge_size, spec.patch_dim, seed)
        with torch.no_grad():
            expected = reference(torch.from_numpy(pixels), grid_thw=torch.from_numpy(grid)).pooler_output
        (got,) = session.run(None, {"pixel_values": pixels, "image_grid_thw": grid})
        tokens = int(grid.prod(axis=1).sum()) // spec.merge_unit
        assert got.shape == (tokens, spec.out_hidden_size), name
        error = float(np.abs(got - expected.numpy()).max())
        assert error <= TOLERANCE, f"{name}: max-abs {error:.3g}"


def test_fp32_matches_transformers_past_8000_patches(vl_checkpoint, vision_graph):
    """The blocked attention over many query blocks: one 8,448-patch image (66 blocks), then a
    two-frame image whose patches share blocks with the first image's last ones."""
    checkpoint, result = vl_checkpoint("tiny"), vision_graph("tiny")
    spec = result.spec
    pixels, grid = _inputs([(1, 48, 44), (2, 3, 5)], spec.spatial_merge_size, spec.patch_dim, seed=7)
    assert pixels.shape[0] == 8448 + 120
    with torch.no_grad():
        expected = reference_tower(checkpoint)(torch.from_numpy(pixels), grid_thw=torch.from_numpy(grid))
    (got,) = _session(result.graph).run(None, {"pixel_values": pixels, "image_grid_thw": grid})
    error = float(np.abs(got - expected.pooler_output.numpy()).max())
    assert error <= TOLERANCE, f"max-abs {error:.3g}"


def test_graph_contract(exported):
    _, result = exported
    session = _session(result.graph)
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    outputs = {o.name: (o.type, o.shape) for o in session.get_outputs()}
    assert inputs == {
        "pixel_values": ("tensor(float)", ["num_patches", result.spec.patch_dim]),
        "image_grid_thw": ("tensor(int64)", ["num_images", 3]),
    }
    assert outputs == {"image_features": ("tensor(float)", ["num_image_tokens", result.spec.out_hidden_size])}
    assert result.graph.name == "vision_encoder.onnx"
    assert result.data_files == ("vision_encoder.onnx_data",)


def test_images_are_independent(exported):
    """Attention stays within each image: an image's tokens do not depend on its neighbours."""
    _, result = exported
    session = _session(result.graph)
    spec = result.spec
    pixels, grid = _inputs(GRIDS["several"], spec.spatial_merge_size, spec.patch_dim, seed=7)
    (together,) = session.run(None, {"pixel_values": pixels, "image_grid_thw": grid})
    start = 0
    for row in grid:
        count = int(row.prod())
        (alone,) = session.run(
            None, {"pixel_values": pixels[start : start + count], "image_grid_thw": row[None, :]}
        )
        first = start // spec.merge_unit
        np.testing.assert_allclose(together[first : first + len(alone)], alone, atol=1e-5, rtol=0)
        start += count


@pytest.mark.parametrize("dtype, min_cosine", [("fp16", 0.9999), ("q8", 0.999), ("q4", 0.99)])
def test_lower_precisions_stay_close(vl_checkpoint, vision_graph, dtype: str, min_cosine: float):
    checkpoint = vl_checkpoint("tiny")
    fp32 = _session(vision_graph("tiny").graph)
    lower = _session(vision_graph("tiny", dtype).graph)
    spec = vision_spec_from_config(json.loads((checkpoint / "config.json").read_text()))
    assert spec is not None
    pixels, grid = _inputs(GRIDS["several"], spec.spatial_merge_size, spec.patch_dim, seed=1)
    feeds = {"pixel_values": pixels, "image_grid_thw": grid}
    (expected,), (got,) = fp32.run(None, feeds), lower.run(None, feeds)
    cosine = float((expected * got).sum() / np.linalg.norm(expected) / np.linalg.norm(got))
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert cosine >= min_cosine, f"{dtype}: cosine {cosine:.6f}"


def test_text_only_checkpoint_has_no_tower(tiny_text_dir: Path):
    with pytest.raises(BadInputError, match="no vision_config"):
        load_tower(tiny_text_dir)


def _rewrite_config(checkpoint: Path, tmp_path: Path, **vision_changes) -> Path:
    import shutil

    copy = tmp_path / "changed"
    shutil.copytree(checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    config["vision_config"].update(vision_changes)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_weights_that_do_not_fit_are_refused(vl_checkpoint, tmp_path: Path):
    changed = _rewrite_config(vl_checkpoint("tiny"), tmp_path, hidden_size=40, num_heads=2)
    with pytest.raises(BadInputError, match=r"do not match config\.json"):
        load_tower(changed)


def test_unknown_vision_weights_are_refused(vl_checkpoint, tmp_path: Path):
    from safetensors.torch import load_file, save_file

    changed = _rewrite_config(vl_checkpoint("tiny"), tmp_path)
    tensors = load_file(str(changed / "model.safetensors"))
    tensors["model.visual.deepstack_merger_list.0.norm.weight"] = torch.ones(128)
    save_file(tensors, str(changed / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(BadInputError, match="deepstack_merger_list"):
        load_tower(changed)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_heads": 5}, "multiple of num_heads"),
        ({"num_heads": 16}, "multiple of 4"),
        ({"num_position_embeddings": 50}, "perfect square"),
        ({"hidden_act": "relu6"}, "hidden_act"),
        ({"depth": 0}, "positive integer"),
        ({"out_hidden_size": 65}, "differs from the text hidden_size"),
        ({"rope_parameters": {"rope_type": "default"}}, "rope_type"),
    ],
)
def test_bad_vision_configs(change: dict, message: str):
    from tests.checkpoints import TINY_TEXT_CONFIG, TINY_VISION_CONFIG

    config = {
        "text_config": TINY_TEXT_CONFIG,
        "vision_config": {**TINY_VISION_CONFIG, "out_hidden_size": 64, **change},
    }
    with pytest.raises(BadInputError, match=message):
        vision_spec_from_config(config)


def test_compare_vision_passes_the_exported_graph(exported):
    from qwen35web.export.vision.validate import compare_vision

    checkpoint, result = exported
    report = compare_vision(checkpoint, result.graph)
    assert report["passed"], report
    assert set(report["grids"]) == {"square", "tall", "wide", "smallest", "several"}


def test_compare_vision_fails_a_graph_of_other_weights(vision_graph, tmp_path: Path):
    from qwen35web.export.vision.validate import compare_vision

    graph = vision_graph("tiny").graph
    other = write_vl_checkpoint(tmp_path / "other-seed", seed=4, vision_config=TOWERS["tiny"])
    report = compare_vision(other, graph)
    assert not report["passed"] and report["grids"]["square"]["max_abs"] > 1e-2
