"""Lower-precision vision graphs: fp16 (traced in half), q8 and q4 (weights of an fp32 trace).

q8 is `com.microsoft::DynamicQuantizeMatMul` (int8 weights, one scale per output column, the
activations quantized per tensor at run time) and q4 is `com.microsoft::MatMulNBits` (4-bit blocks
of 32 along K, asymmetric, accuracy level 4): the decoder's own passes, applied to every projection
of the tower (which pass, with which settings, is each format's record in formats.VISION_FORMATS).
torch.onnx writes the tower's `nn.Linear`s as Gemm (weight [N, K], transB=1), which those passes do
not read, so they are first rewritten as MatMul [K, N] + Add.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qwen35web.export.formats import VISION_FORMATS
from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import add_initializer, weight_array
from qwen35web.export.passes.quantize import drop_unused_initializer

log = logging.getLogger(__name__)


def _plain_gemm_weight(node: ir.Node) -> ir.Value | None:
    """B of a Gemm computing A @ B^T (+ C) with a constant 2-D B; None for any other Gemm."""
    if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx"):
        return None
    attributes = {name: attr.value for name, attr in node.attributes.items()}
    if attributes.get("transA", 0) or not attributes.get("transB", 0):
        return None
    if attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0:
        return None
    weight = node.inputs[1]
    if weight is None or weight.const_value is None or len(weight.const_value.shape) != 2:
        return None
    return weight


def gemm_to_matmul(graph: ir.Graph) -> int:
    """Rewrite every A @ B^T + C Gemm with a constant B [N, K] as MatMul(A, B^T [K, N]) + C."""
    count = 0
    for node in [n for n in graph if _plain_gemm_weight(n) is not None]:
        weight = _plain_gemm_weight(node)
        assert weight is not None and weight.name is not None
        transposed = add_initializer(graph, f"{weight.name}.kn", np.ascontiguousarray(weight_array(weight).T))
        matmul = ir.node("MatMul", [node.inputs[0], transposed], name=f"{node.name}_matmul")
        new_nodes = [matmul]
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            new_nodes.append(ir.node("Add", [matmul.outputs[0], node.inputs[2]], name=f"{node.name}_bias"))
        ir.convenience.replace_nodes_and_values(
            graph, node, [node], new_nodes, list(node.outputs), list(new_nodes[-1].outputs)
        )
        drop_unused_initializer(graph, weight)
        count += 1
    return count


def quantize_vision(model: ir.Model, dtype: str) -> ir.Model:
    """A quantized vision format (q8 or q4) from an fp32 vision graph, in place; returns it."""
    vision_format = VISION_FORMATS.get(dtype)
    if vision_format is None or vision_format.quantize is None:
        quantized = [name for name, f in VISION_FORMATS.items() if f.quantize is not None]
        raise ValueError(f"quantize_vision makes {' or '.join(quantized)}, not {dtype!r}")
    graph = model.graph
    rewritten = gemm_to_matmul(graph)
    count, float_bytes, quantized_bytes = vision_format.quantize(graph)
    model.opset_imports[MS_DOMAIN] = 1
    log.info(
        "vision %s: %d Gemm rewritten, %d MatMul weights quantized, %.1f MB -> %.1f MB",
        dtype,
        rewritten,
        count,
        float_bytes / 1e6,
        quantized_bytes / 1e6,
    )
    return model
