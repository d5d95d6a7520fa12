"""Pass: int8 weights for onnxruntime-web's wasm build (`--dtype q8`).

Chosen by measurement (`python -m bench.wasm_formats`, bench/results/wasm-formats.md): in the wasm
build, `MatMulNBits` (int4 or int8) dequantizes in scalar code at 1.4–1.8 ns per weight, while
`com.microsoft::DynamicQuantizeMatMul` runs the SIMD integer GEMM: 0.27 ns per weight for one row
(decode; fp32 MatMul is 0.14 but a 0.8B fp32 model does not fit the 4 GB wasm heap) and 2.9 ns per
weight for 128 rows (prefill; fp32 7.5). So every MatMul with a constant weight [K, N] becomes
DynamicQuantizeMatMul with int8 weights and one fp32 scale per output column (symmetric, zero
point 0); the activations are quantized per tensor to uint8 at run time by the kernel.

The embedding table E [V, D] is stored once, as E^T [D, V] quantized per column (one scale per
token): the layout a tied LM head reads directly, and the lookup reads its columns with
`Gather(axis=1)`, then transposes the few gathered rows back and applies their scales.

Output widths N that are a multiple of 2048 run 2-3x slower per weight in the wasm build's int8 GEMM
(measured at M = 1, one thread: N = 2048 / 4096 / 6144 / 8192 at 0.29 / 0.44 / 0.29 / 0.44 ns per
weight, N = 2112 / 4160 / 6272 at 0.17-0.19, 3584 at 0.15: rows of the weight that far apart share
cache sets). Such weights get 64 zero columns more, and a Slice takes the N real outputs back: the
same numbers, 3 % more bytes for those weights (the 2B's projections are nearly all of that width).

Why not onnxruntime's `quantize_dynamic`: it rewrites a serialized ModelProto (a second fp32 copy
of every weight) and does not see a tied head through its Transpose. The rounding is
`quantization.columns`.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import add_initializer, weight_array
from qwen35web.export.passes.quantize_embedding_int8 import (
    quantize_embedding_table_int8,
    store_embedding_fp16,
)
from qwen35web.export.passes.quantize_graph import (
    constant_weight,
    drop_unused_initializer,
    dynamic_quantize_matmul_node,
    replace_node,
    static_shape,
)
from qwen35web.export.quantization.columns import quantize_columns

log = logging.getLogger(__name__)

_FP32 = (ir.DataType.FLOAT,)  # q8 quantizes fp32 graphs only
EMBEDDINGS = ("int8", "float")  # q8's choices for the token table and a tied head
ALIASED_WIDTH = 2048  # output widths that are a multiple of this are padded (see the module doc)
WIDTH_PADDING = 64


def unaliased(quantized: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 [K, N] and scales [N], with WIDTH_PADDING zero columns more when N is an aliased width."""
    k, n = quantized.shape
    if n % ALIASED_WIDTH:
        return quantized, scales
    padded = np.zeros((k, n + WIDTH_PADDING), dtype=quantized.dtype)
    padded[:, :n] = quantized
    return padded, np.concatenate([scales, np.ones(WIDTH_PADDING, dtype=scales.dtype)])


class _FirstColumns:
    """Slices value [..., N + padding] -> [..., N] (the real outputs); one set of bounds per N."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.bounds: dict[int, list[ir.Value]] = {}

    def node(self, value: ir.Value, width: int, name: str) -> ir.Node:
        if width not in self.bounds:
            self.bounds[width] = [
                add_initializer(self.graph, f"slice_{part}_{width}", np.array([bound], dtype=np.int64))
                for part, bound in (("starts", 0), ("ends", width), ("axes", -1))
            ]
        return ir.node("Slice", [value, *self.bounds[width]], name=name)


def quantize_matmuls_int8(graph: ir.Graph) -> tuple[int, int, int]:
    """Replace every MatMul with a constant fp32 weight; returns (count, float bytes, int8 bytes)."""
    done: dict[str, tuple[ir.Value, ir.Value]] = {}  # a weight shared by several MatMuls: once
    first_columns = _FirstColumns(graph)
    count = float_bytes = quantized_bytes = 0
    for node in [n for n in graph if constant_weight(n, _FP32) is not None]:
        weight, activations = constant_weight(node, _FP32), node.inputs[0]
        assert weight is not None and weight.name is not None and activations is not None
        width = static_shape(weight)[1]
        if weight.name not in done:
            array = weight_array(weight)  # [K, N]
            quantized, scales = unaliased(*quantize_columns(array))
            done[weight.name] = (
                add_initializer(graph, f"{weight.name}.q8", quantized),
                add_initializer(graph, f"{weight.name}.q8_scales", scales),
            )
            float_bytes += array.nbytes
            quantized_bytes += quantized.nbytes + scales.nbytes
            del array
        new = [dynamic_quantize_matmul_node(activations, *done[weight.name], f"{node.name}_q8")]
        if static_shape(done[weight.name][1])[0] != width:  # padded: keep the N real columns
            new.append(first_columns.node(new[0].outputs[0], width, f"{node.name}_q8_slice"))
        replace_node(graph, node, new)
        drop_unused_initializer(graph, weight)
        count += 1
    return count, float_bytes, quantized_bytes


def quantize_weights_int8(model: ir.Model, *, embedding: str = "int8") -> ir.Model:
    """Quantize the model's MatMul weights and embedding table to int8, in place; returns it.

    With `embedding="float"` the table and a tied head that reads it are stored once as fp16
    E^T and computed in fp32 (see quantize_embedding_int8.store_embedding_fp16); an untied head
    is one more int8 projection either way.
    """
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {embedding!r}")
    halves = [v.name for v in model.graph.initializers.values() if v.dtype == ir.DataType.FLOAT16]
    if halves:
        raise ValueError(f"q8 quantizes an fp32 graph (trace in fp32); {halves[0]!r} is fp16")
    if embedding == "int8":
        quantize_embedding_table_int8(model.graph)
    else:
        store_embedding_fp16(model.graph)
    count, float_bytes, quantized_bytes = quantize_matmuls_int8(model.graph)
    model.opset_imports[MS_DOMAIN] = 1
    log.info(
        "quantized %d MatMul weights to int8 (per column): %.1f MB -> %.1f MB",
        count,
        float_bytes / 1e6,
        quantized_bytes / 1e6,
    )
    return model
