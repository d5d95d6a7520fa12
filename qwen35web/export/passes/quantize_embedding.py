"""Pass (part of q4/q4f16): the embedding table, and a tied LM head, stored once in blocks of 4 or 8 bits.

The traced graph reads the table E [V, D] twice when the embeddings are tied: `Gather(E, ids)`
for the lookup and `MatMul(h, Transpose(E))` for the head. Quantizing E^T [D, V] blockwise
along D gives MatMulNBits' layout packed [V, D/block, block*bits/8] with scales [V, D/block],
which is also, row for row, what `com.microsoft::GatherBlockQuantized` reads for uint8 data
quantized along its last axis (same low-nibble-first packing for 4 bits, same default zero point
2^(bits-1), same per-row packing of the zero points). So both nodes read one packed weight, one
scales tensor and one zero-point tensor. 8 bits (`--embedding int8`) is the same layout one byte
per value: a quarter of the float table's size, and a head far closer to the float one than int4's.

The one mismatch is the packed weight's rank: MatMulNBits insists on [N, k_blocks, blob] while
GatherBlockQuantized wants its data 2-D [V, D*bits/8] when its scales are 2-D (scales and data
must have the same rank; 3-D scales [V, k_blocks, 1] would not fit MatMulNBits). The lookup
therefore reads the packed weight through a Reshape of the initializer: stored once on disk, and
the head's MatMulNBits still sees a plain initializer, which its CPU kernel needs in order to
prepack it.

Why not onnxruntime's MatMulNBitsQuantizer here: it skips the head (its weight is a Transpose
output, not an initializer), and asked to quantize Gather it writes a uint4 copy of the table
next to the float one the head still reads (and raises the model to opset 21).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import add_initializer, weight_array
from qwen35web.export.passes.quantize_graph import (
    QuantizedInitializers,
    QuantizeSettings,
    check_float_type,
    drop_unused_initializer,
    embedding_lookup,
    matmul_nbits_node,
    register_quantized,
    remove_transposes,
    replace_node,
    tied_heads,
)
from qwen35web.export.quantization.nbits import block_quantize

log = logging.getLogger(__name__)


def _gather_node(
    ids: ir.Value, data: ir.Value, weight: QuantizedInitializers, settings: QuantizeSettings
) -> ir.Node:
    """ids [...] -> rows [..., D], dequantized to the scales' dtype."""
    inputs = [data, ids, weight.scales]
    if weight.zero_points is not None:
        inputs.append(weight.zero_points)
    attributes = {
        "gather_axis": 0,
        "quantize_axis": 1,
        "block_size": settings.block_size,
        "bits": weight.bits,
    }
    return ir.node(
        "GatherBlockQuantized", inputs, attributes, domain=MS_DOMAIN, name=f"embedding_q{weight.bits}"
    )


def _packed_as_2d(graph: ir.Graph, weight: QuantizedInitializers, vocab: int, hidden: int) -> ir.Node:
    """Reshape packed [V, k_blocks, block*bits/8] -> [V, D*bits/8], the layout GatherBlockQuantized reads.

    Stored once in the file; onnxruntime may fold the Reshape into a buffer of its own at load.
    """
    row_bytes = hidden * weight.bits // 8
    shape = add_initializer(
        graph, f"{weight.packed.name}_2d_shape", np.array([vocab, row_bytes], dtype=np.int64)
    )
    node = ir.node("Reshape", [weight.packed, shape], name=f"embedding_q{weight.bits}_as_2d")
    node.outputs[0].name = f"{weight.packed.name}_2d"
    node.outputs[0].dtype = ir.DataType.UINT8
    node.outputs[0].shape = ir.Shape([vocab, row_bytes])
    return node


def _rewrite_lookup(
    graph: ir.Graph,
    lookup: ir.Node,
    weight: QuantizedInitializers,
    table_shape: tuple[int, int],
    settings: QuantizeSettings,
) -> None:
    reshape = _packed_as_2d(graph, weight, *table_shape)
    ids = lookup.inputs[1]
    assert ids is not None
    replace_node(graph, lookup, [reshape, _gather_node(ids, reshape.outputs[0], weight, settings)])


def _rewrite_heads(
    graph: ir.Graph,
    heads: list[tuple[ir.Node, ir.Node]],
    weight: QuantizedInitializers,
    table_shape: tuple[int, int],
    settings: QuantizeSettings,
) -> None:
    vocab, hidden = table_shape
    for _, matmul in heads:
        hidden_states = matmul.inputs[0]  # [..., D]
        assert hidden_states is not None
        name = f"{matmul.name}_q{weight.bits}"
        replace_node(graph, matmul, [matmul_nbits_node(hidden_states, weight, hidden, vocab, settings, name)])
    remove_transposes(graph, heads)


def quantize_embedding_table(graph: ir.Graph, settings: QuantizeSettings, bits: int = 4) -> bool:
    """Quantize the embedding table (and tied heads) in place; False if the graph has none to do."""
    found = embedding_lookup(graph)
    if found is None:
        log.warning("no embedding Gather on a float initializer: embedding left as it is")
        return False
    lookup, table = found
    heads = tied_heads(table, lookup)
    array = weight_array(table)  # [V, D]
    vocab, hidden = array.shape
    if heads is None or hidden % settings.block_size:
        log.warning("embedding %s: read in an unknown way, or D %% block != 0: left float", table.name)
        return False
    check_float_type(table, settings)
    # Quantizing E^T [D, V] along D gives one block row per token: the lookup's and the head's layout.
    quantized = block_quantize(array.T, settings.block_size, settings.symmetric, bits)
    weight = register_quantized(graph, table.name or "embedding", quantized)
    _rewrite_lookup(graph, lookup, weight, (vocab, hidden), settings)
    _rewrite_heads(graph, heads, weight, (vocab, hidden), settings)
    drop_unused_initializer(graph, table)
    log.info(
        "embedding %s [%d, %d] stored once as int%d, read by the lookup and %d tied head(s): %.1f -> %.1f MB",
        table.name,
        vocab,
        hidden,
        bits,
        len(heads),
        array.nbytes / 1e6,
        quantized.nbytes() / 1e6,
    )
    return True
