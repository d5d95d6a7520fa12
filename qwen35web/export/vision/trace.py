"""Trace the vision tower into ONNX with torch.onnx (dynamo), dynamic in the images and their grids."""

from __future__ import annotations

import logging
import warnings

import onnx_ir as ir
import torch
from torch.export import Dim

from qwen35web.export.ops.domain import ONNX_OPSET
from qwen35web.export.vision.attention import attach_function, translation_table
from qwen35web.export.vision.vision_model import VisionTower

log = logging.getLogger(__name__)

PIXEL_VALUES, IMAGE_GRID_THW, IMAGE_FEATURES = "pixel_values", "image_grid_thw", "image_features"
NUM_PATCHES, NUM_IMAGES, NUM_TOKENS = "num_patches", "num_images", "num_image_tokens"
# Two images of unequal grids, in merge blocks (t, h / m, w / m): the patch, token and image counts
# are all at least 2, so torch.export keeps every axis symbolic.
_TRACE_BLOCKS = ((1, 2, 3), (1, 1, 2))


def example_inputs(tower: VisionTower) -> tuple[torch.Tensor, torch.Tensor]:
    merge = tower.spec.spatial_merge_size
    grids = torch.tensor([(t, h * merge, w * merge) for t, h, w in _TRACE_BLOCKS], dtype=torch.int64)
    patches = int(grids.prod(dim=-1).sum())
    return torch.zeros((patches, tower.spec.patch_dim), dtype=torch.float32), grids


def dynamic_shapes(tower: VisionTower) -> tuple[dict[int, object], dict[int, object]]:
    # The merger folds m^2 consecutive patches into one token: the patch count is a multiple of m^2,
    # which torch.export must be told (a free dim would fail its divisibility guard).
    tokens = Dim(NUM_TOKENS)
    return {0: tokens * tower.spec.merge_unit}, {0: Dim(NUM_IMAGES)}


def _rename_dims(model: ir.Model) -> None:
    """The tracer names dims after its own symbols; give them the contract's names."""
    graph = model.graph
    pixels, grids, features = graph.inputs[0], graph.inputs[1], graph.outputs[0]
    assert pixels.shape is not None and grids.shape is not None and features.shape is not None
    pixels.shape = ir.Shape([NUM_PATCHES, pixels.shape[1]])
    grids.shape = ir.Shape([NUM_IMAGES, 3])
    features.shape = ir.Shape([NUM_TOKENS, features.shape[1]])


def trace_vision(tower: VisionTower) -> ir.Model:
    """The tower as an ONNX model, its weights in the tower's dtype; I/O float32 whatever that is."""
    log.info("tracing the vision tower with torch.onnx (dynamo)")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            tower.eval(),
            example_inputs(tower),
            dynamo=True,
            input_names=[PIXEL_VALUES, IMAGE_GRID_THW],
            output_names=[IMAGE_FEATURES],
            dynamic_shapes=dynamic_shapes(tower),
            custom_translation_table=translation_table(),
            opset_version=ONNX_OPSET,
            optimize=True,
            verbose=False,
        )
    assert program is not None
    model = program.model
    _rename_dims(model)
    attach_function(model)
    return model
