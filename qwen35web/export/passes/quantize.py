"""Pass: block quantization of the weights (`--dtype q4` and `--dtype q4f16`).

Every MatMul whose right operand is a constant 2-D weight [K, N] becomes one
`com.microsoft::MatMulNBits` (4 bits, blocks of `block_size` along K, one scale per block and,
unless symmetric, one 4-bit zero point per block; layout in `quantization.nbits`). The embedding
table and the LM head get the recipe's `embedding` precision (int4, int8 or float): a tied head
through `passes.quantize_embedding`, which stores the table once; an untied head here.

We do not run `MatMulNBitsQuantizer.process()` on the whole model: it works on a `ModelProto`, so
it needs a serialized fp32 copy of every weight next to the traced graph's own (6 GB at 0.8B), and
it cannot share the tied embedding. Here one weight is quantized at a time, in column slabs, and
its float initializer leaves the graph as soon as its quantized form is in.

Scales have the activations' dtype (MatMulNBits requires A and scales of one type): `q4` is an
fp32 graph with fp32 scales; `q4f16` is the fp16 graph (traced in fp16, recurrent state still
fp32) with fp16 scales.
"""

from __future__ import annotations

import logging

import onnx_ir as ir

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import weight_array
from qwen35web.export.passes.quantize_embedding import quantize_embedding_table
from qwen35web.export.passes.quantize_graph import (
    QuantizedInitializers,
    QuantizeSettings,
    check_float_type,
    constant_weight,
    drop_unused_initializer,
    matmul_nbits_node,
    register_quantized,
    replace_node,
    untied_heads,
)
from qwen35web.export.quantization.nbits import EMBEDDING_BITS, block_quantize, check_settings

log = logging.getLogger(__name__)


def quantize_matmul(
    graph: ir.Graph,
    node: ir.Node,
    settings: QuantizeSettings,
    bits: int,
    done: dict[str, QuantizedInitializers],
) -> tuple[int, int]:
    """Replace one MatMul on a constant weight; returns (float bytes, quantized bytes) newly stored.

    `done` holds the weights already quantized: a weight several MatMuls read is stored once.
    """
    weight, activations = constant_weight(node), node.inputs[0]
    assert weight is not None and weight.name is not None and activations is not None
    check_float_type(weight, settings)
    array = weight_array(weight)  # [K, N]
    stored = (0, 0)
    if weight.name not in done:
        quantized = block_quantize(array, settings.block_size, settings.symmetric, bits)
        done[weight.name] = register_quantized(graph, weight.name, quantized)
        stored = (array.nbytes, quantized.nbytes())
    k, n = array.shape
    del array
    name = f"{node.name}_q{bits}"
    replace_node(graph, node, [matmul_nbits_node(activations, done[weight.name], k, n, settings, name)])
    drop_unused_initializer(graph, weight)
    return stored


def quantize_matmuls(
    graph: ir.Graph, settings: QuantizeSettings, skip: tuple[ir.Node, ...] = ()
) -> tuple[int, int, int]:
    """Replace every constant-weight MatMul but `skip`; returns (count, float bytes, int4 bytes)."""
    done: dict[str, QuantizedInitializers] = {}
    count = float_bytes = quantized_bytes = 0
    for node in [n for n in graph if constant_weight(n) is not None and n not in skip]:
        stored_float, stored_quantized = quantize_matmul(graph, node, settings, 4, done)
        float_bytes += stored_float
        quantized_bytes += stored_quantized
        count += 1
    return count, float_bytes, quantized_bytes


def _quantize_table_and_heads(
    graph: ir.Graph, settings: QuantizeSettings, embedding: str
) -> tuple[ir.Node, ...]:
    """The token table and LM head at the `embedding` precision; returns the heads left float."""
    bits = EMBEDDING_BITS[embedding]
    heads = untied_heads(graph)  # found before the lookup is rewritten: they are sized by the table
    if bits is None:
        return tuple(heads)
    quantize_embedding_table(graph, settings, bits)
    if bits != 4:  # an int4 untied head is one more projection: the body's loop takes it
        done: dict[str, QuantizedInitializers] = {}
        for head in heads:
            quantize_matmul(graph, head, settings, bits, done)
        log.info("%d untied LM head(s) quantized to int%d", len(heads), bits)
    return ()


def quantize_weights(
    model: ir.Model,
    *,
    block_size: int = 32,
    accuracy_level: int = 4,
    fp16_scales: bool,
    embedding: str = "int4",
    symmetric: bool = False,
) -> ir.Model:
    """Quantize the model's MatMul weights to int4 and its token table and LM head to `embedding`.

    In place; returns the model. `fp16_scales` must match the graph's float type (True for a graph
    traced in fp16). `embedding` is "int4", "int8" (same blocks, 8 bits) or "float" (the table and
    the head stay as traced). `symmetric` drops the zero points (weight = scale * (q - 2^(bits-1)));
    the default, asymmetric, is onnxruntime's default and the more accurate.
    """
    check_settings(block_size, accuracy_level)
    if embedding not in EMBEDDING_BITS:
        raise ValueError(f"embedding must be one of {', '.join(EMBEDDING_BITS)}, got {embedding!r}")
    settings = QuantizeSettings(block_size, accuracy_level, symmetric, fp16_scales)
    graph = model.graph
    float_heads = _quantize_table_and_heads(graph, settings, embedding)
    count, float_bytes, quantized_bytes = quantize_matmuls(graph, settings, skip=float_heads)
    model.opset_imports[MS_DOMAIN] = 1
    log.info(
        "quantized %d MatMul weights to int4 (block %d): %.1f MB -> %.1f MB",
        count,
        block_size,
        float_bytes / 1e6,
        quantized_bytes / 1e6,
    )
    return model
