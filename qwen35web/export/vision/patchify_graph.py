"""The patchify graph: a resized uint8 image -> transformers' `pixel_values` rows, in ONNX.

Rescale and normalize are one table lookup (`runtime.vision.patchify.normalization_table`, the
exact float32 values); the patch order is one Reshape/Transpose; temporal duplication is an Expand.
Standard opset-18 ops only, so onnxruntime and onnxruntime-web (wasm, WebGPU) run the same file.

  input : image uint8 [height, width, channels]   (channels >= 3; only the first 3 are read)
  output: pixel_values float32 [num_patches, 3 * T * P * P]
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from qwen35web.export.errors import BadInputError
from qwen35web.export.ops.domain import ONNX_OPSET
from qwen35web.runtime.errors import RuntimeUserError
from qwen35web.runtime.vision.patchify import (
    PATCHIFY_FILE,
    PATCHIFY_INPUT,
    PATCHIFY_OUTPUT,
    normalization_table,
)
from qwen35web.runtime.vision.processor_config import ImageProcessorSpec, read_preprocessor_config

# [block_h, merge_h, patch_h, block_w, merge_w, patch_w, channel] -> [block_h, block_w, merge_h,
# merge_w, channel, patch_h, patch_w]: transformers' (gh, gw, mh, mw, C, ph, pw).
_PATCH_ORDER = [0, 3, 1, 4, 6, 2, 5]


def _int64s(name: str, values: list[int]) -> TensorProto:
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def _initializers(spec: ImageProcessorSpec) -> list[TensorProto]:
    p, m, t = spec.patch_size, spec.merge_size, spec.temporal_patch_size
    return [
        helper.make_tensor("table", TensorProto.FLOAT, [768], normalization_table(spec)),
        # Channel c's table starts at c * 256; shaped to broadcast along the channel axis.
        helper.make_tensor("channel_offsets", TensorProto.INT32, [3, 1, 1], [0, 256, 512]),
        _int64s("zero", [0]),
        _int64s("three", [3]),
        _int64s("channel_axis", [2]),
        _int64s("frame_axis", [5]),
        _int64s("factor", [spec.factor]),
        _int64s("merge_patch", [m, p]),
        _int64s("temporal", [1, 1, 1, 1, 1, t, 1, 1]),
        _int64s("rows", [-1, spec.patch_dim]),
    ]


def _nodes() -> list[onnx.NodeProto]:
    node = helper.make_node
    # The reorder runs on the uint8 bytes (a quarter of the float traffic), the lookup after it.
    return [
        node("Slice", [PATCHIFY_INPUT, "zero", "three", "channel_axis"], ["rgb"]),  # [H, W, 3] uint8
        node("Shape", [PATCHIFY_INPUT], ["height"], start=0, end=1),
        node("Shape", [PATCHIFY_INPUT], ["width"], start=1, end=2),
        node("Div", ["height", "factor"], ["blocks_h"]),
        node("Div", ["width", "factor"], ["blocks_w"]),
        node("Concat", ["blocks_h", "merge_patch", "blocks_w", "merge_patch", "three"], ["blocked"], axis=0),
        node("Reshape", ["rgb", "blocked"], ["split"]),  # [bh, m, P, bw, m, P, 3]
        node("Transpose", ["split"], ["ordered"], perm=_PATCH_ORDER),  # [bh, bw, m, m, 3, P, P]
        node("Cast", ["ordered"], ["ordered32"], to=TensorProto.INT32),
        node("Add", ["ordered32", "channel_offsets"], ["table_index"]),  # c * 256 + v
        node("Gather", ["table", "table_index"], ["values"], axis=0),  # [bh, bw, m, m, 3, P, P] float32
        node("Unsqueeze", ["values", "frame_axis"], ["one_frame"]),  # [bh, bw, m, m, 3, 1, P, P]
        node("Expand", ["one_frame", "temporal"], ["frames"]),  # [bh, bw, m, m, 3, T, P, P]
        node("Reshape", ["frames", "rows"], [PATCHIFY_OUTPUT]),  # [N, 3 * T * P * P]
    ]


def patchify_model(spec: ImageProcessorSpec) -> onnx.ModelProto:
    graph = helper.make_graph(
        _nodes(),
        "patchify",
        [helper.make_tensor_value_info(PATCHIFY_INPUT, TensorProto.UINT8, ["height", "width", "channels"])],
        [helper.make_tensor_value_info(PATCHIFY_OUTPUT, TensorProto.FLOAT, ["num_patches", spec.patch_dim])],
        _initializers(spec),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = 8  # onnxruntime-web 1.30 reads IR 8 and up
    onnx.checker.check_model(model, full_check=True)
    return model


def write_patchify_graph(model_dir: Path, out_dir: Path) -> Path:
    """Build the graph from the checkpoint's preprocessor_config.json into out_dir/vision_patchify.onnx."""
    try:
        spec = read_preprocessor_config(model_dir)
    except RuntimeUserError as err:
        raise BadInputError(str(err)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PATCHIFY_FILE
    onnx.save(patchify_model(spec), str(path))
    return path
