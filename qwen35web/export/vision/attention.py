"""The vision tower's attention in blocks of queries: memory linear in the patches, not quadratic.

Dense attention over an image's N patches holds [heads, N, N] scores: 3.2 GB per layer for the
0.8B tower on a 1080p image, and onnxruntime fails to allocate them for a 12 MP photo. Here one
ONNX `Loop` takes BLOCK queries at a time against all keys, so the largest intermediate is
[heads, BLOCK, N] (0.8B, 16,384 patches: 12 x 128 x 16,384 x 4 B = 100 MB) and the peak grows
linearly in N. The result is the same softmax(q k^T) v, row by row, as transformers' attention.

    ai.qwen35web::VisionAttention(query, key, value [H, N, D] (query pre-scaled), segment int64 [N])
        -> output [N, H * D]

Patches attend only within their segment (image frame): keys of another segment are masked, as
transformers' per-frame split does. The node's ONNX function body (standard ops, opset
ONNX_OPSET) is attached to the model after tracing (`attach_function`); onnxruntime inlines it.
Query rows are padded to a multiple of BLOCK (segment -1: attends to nothing, finite, cut off) so
every loop iteration yields one equal-shaped scan output.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir
import torch
from onnx import TensorProto, helper

from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, ONNX_OPSET, custom_opset

OP_TYPE = "VisionAttention"
TORCH_OP_NAME = "qwen35web::vision_attention"
# Queries per loop step. Measured (bench/results/vision_attention_block.md): 128 is within a few per
# cent of the fastest on 2 CPU cores at 4k-16k patches and keeps the step's scores at 100 MB there.
BLOCK = 128
_MASKED = -3.0e38  # below any real score, finite: a fully masked (padding) row stays finite


def blocked_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, segment: torch.Tensor
) -> torch.Tensor:
    """The op's meaning in torch: [H, N, D] x3 and [N] -> [N, H * D], softmax in float32."""
    heads, n, dim = query.shape
    out = torch.empty((n, heads, dim), dtype=value.dtype)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        scores = (query[:, start:stop] @ key.transpose(1, 2)).float()  # [H, b, N]
        same = segment[start:stop, None] == segment[None, :]  # [b, N]
        probs = torch.softmax(torch.where(same, scores, _MASKED), dim=-1).to(value.dtype)
        out[start:stop] = (probs @ value).transpose(0, 1)  # [b, H, D]
    return out.reshape(n, heads * dim)


@torch.library.custom_op(TORCH_OP_NAME, mutates_args=())
def _vision_attention_op(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, segment: torch.Tensor
) -> torch.Tensor:
    return blocked_attention(query, key, value, segment)


@_vision_attention_op.register_fake
def _vision_attention_fake(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, segment: torch.Tensor
) -> torch.Tensor:
    heads, n, dim = query.shape
    return query.new_empty((n, heads * dim))


TORCH_OP = torch.ops.qwen35web.vision_attention.default


def _schema() -> onnx.defs.OpSchema:
    parameter = onnx.defs.OpSchema.FormalParameter
    floats = ["tensor(float)", "tensor(float16)"]
    return onnx.defs.OpSchema(
        OP_TYPE,
        DOMAIN,
        DOMAIN_VERSION,
        doc=__doc__ or "",
        inputs=[parameter(n, "T") for n in ("query", "key", "value")] + [parameter("segment", "I")],
        outputs=[parameter("output", "T")],
        type_constraints=[("T", floats, "activations"), ("I", ["tensor(int64)"], "segment ids")],
    )


def register_onnx_schema() -> None:
    if not onnx.defs.has(OP_TYPE, DOMAIN):
        onnx.defs.register_schema(_schema())


def onnx_translation(query, key, value, segment):
    """`custom_translation_table` entry: one ai.qwen35web::VisionAttention node (unannotated
    parameters are tensor inputs to the exporter)."""
    register_onnx_schema()
    return custom_opset.VisionAttention(query, key, value, segment)


def translation_table() -> dict:
    return {TORCH_OP: onnx_translation}


def _const_ints(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value_ints=values)


def _loop_body(cast: bool) -> onnx.GraphProto:
    """One block: queries [first, first + block) of the padded query against all keys.
    Reads from the function's scope: q_pad [H, Np, D], key_t [H, D, N], value [H, N, D],
    seg_pad [Np], seg_row [1, N], block [1]. `cast`: the softmax runs in float32 (fp16 graphs)."""
    n = helper.make_node
    scores = "scores_f" if cast else "scores"
    nodes = [
        n("Unsqueeze", ["step", "axis0"], ["step_1"]),  # [1]
        n("Mul", ["step_1", "block"], ["first"]),  # [1]
        n("Add", ["first", "block"], ["last"]),
        n("Slice", ["q_pad", "first", "last", "axis1"], ["q_block"]),  # [H, B, D]
        n("MatMul", ["q_block", "key_t"], ["scores"]),  # [H, B, N]
        *([n("Cast", ["scores"], ["scores_f"], to=TensorProto.FLOAT)] if cast else []),
        n("Slice", ["seg_pad", "first", "last", "axis0"], ["seg_block"]),  # [B]
        n("Unsqueeze", ["seg_block", "axis1"], ["seg_col"]),  # [B, 1]
        n("Equal", ["seg_col", "seg_row"], ["same"]),  # [B, N]
        n("Where", ["same", "zero_f", "masked"], ["bias"]),  # [B, N]: small, then one add over heads
        n("Add", [scores, "bias"], ["kept"]),  # [H, B, N]
        n("Softmax", ["kept"], ["probs_f" if cast else "probs"], axis=-1),
        *([n("CastLike", ["probs_f", "value"], ["probs"])] if cast else []),
        n("MatMul", ["probs", "value"], ["out_hbd"]),  # [H, B, D]
        n("Transpose", ["out_hbd"], ["out_block"], perm=[1, 0, 2]),  # [B, H, D]
        n("Identity", ["cond_in"], ["cond_out"]),
    ]
    return helper.make_graph(
        nodes,
        "vision_attention_block",
        [
            helper.make_tensor_value_info("step", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            onnx.ValueInfoProto(name="out_block"),  # typed like `value`: inferred
        ],
    )


def function_proto(block: int = BLOCK, float32: bool = True) -> onnx.FunctionProto:
    """The op's body: pad the queries to whole blocks, Loop over blocks, cut the padding off.
    `float32`: the graph's activations are float32 (no casts around the softmax); `block`: queries
    per step (other values serve bench/vision_attention_block.py)."""
    n = helper.make_node
    nodes = [
        _const_ints("block", [block]),
        _const_ints("axis0", [0]),
        _const_ints("axis1", [1]),
        _const_ints("zero", [0]),
        n("Constant", [], ["masked"], value_float=_MASKED),
        n("Constant", [], ["zero_f"], value_float=0.0),
        n("Constant", [], ["true"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
        n("Constant", [], ["minus_one"], value=helper.make_tensor("m", TensorProto.INT64, [], [-1])),
        n("Shape", ["query"], ["n_1"], start=1, end=2),  # [1] = N
        n("Shape", ["query"], ["heads_1"], start=0, end=1),  # [1] = H
        n("Shape", ["query"], ["dim_1"], start=2, end=3),  # [1] = D
        n("Sub", ["block", "n_1"], ["short"]),
        n("Mod", ["short", "block"], ["pad_1"]),  # [1]: rows to reach a multiple of the block
        n("Add", ["n_1", "pad_1"], ["padded_1"]),
        n("Div", ["padded_1", "block"], ["steps_1"]),
        n("Squeeze", ["steps_1", "axis0"], ["steps"]),  # scalar trip count
        n("Concat", ["zero", "zero", "zero", "zero", "pad_1", "zero"], ["q_pads"], axis=0),
        n("Pad", ["query", "q_pads"], ["q_pad"]),  # [H, Np, D], zero rows
        n("Concat", ["zero", "pad_1"], ["seg_pads"], axis=0),
        n("Pad", ["segment", "seg_pads", "minus_one"], ["seg_pad"]),  # [Np]
        n("Unsqueeze", ["segment", "axis0"], ["seg_row"]),  # [1, N]
        n("Transpose", ["key"], ["key_t"], perm=[0, 2, 1]),  # [H, D, N]
        n("Loop", ["steps", "true"], ["blocks"], body=_loop_body(cast=not float32)),  # [steps, B, H, D]
        n("Mul", ["heads_1", "dim_1"], ["width_1"]),
        n("Concat", ["padded_1", "width_1"], ["flat_shape"], axis=0),
        n("Reshape", ["blocks", "flat_shape"], ["flat"]),  # [Np, H * D]
        n("Slice", ["flat", "zero", "n_1", "axis0"], ["output"]),  # [N, H * D]
    ]
    return helper.make_function(
        DOMAIN,
        OP_TYPE,
        ["query", "key", "value", "segment"],
        ["output"],
        nodes,
        [helper.make_opsetid("", ONNX_OPSET)],
    )


def attach_function(model: ir.Model) -> None:
    """Give the traced model the op's body (a model-local function onnxruntime inlines), for the
    dtype of its attention nodes' queries."""
    dtypes = {
        node.inputs[0].dtype
        for node in model.graph.all_nodes()
        if node.domain == DOMAIN and node.op_type == OP_TYPE and node.inputs[0] is not None
    }
    function = ir.serde.deserialize_function(function_proto(float32=dtypes <= {ir.DataType.FLOAT}))
    model.functions[function.identifier()] = function
    model.opset_imports.setdefault("", ONNX_OPSET)
    model.opset_imports[DOMAIN] = DOMAIN_VERSION
