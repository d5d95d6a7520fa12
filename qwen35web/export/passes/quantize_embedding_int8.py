"""Pass (part of the int8 quantization): the embedding table, and a tied LM head, stored once as int8.

E [V, D] is quantized as E^T [D, V] with one scale per column (per token): DynamicQuantizeMatMul's
weight layout, so a tied head `MatMul(h, Transpose(E))` reads it as it is. The lookup gathers the
tokens' columns, `Gather(E^T, ids, axis=1)` -> [D, *ids], and puts D last again:

    rows = Transpose(Cast(Gather(q, ids, axis=1)), [1, .., r, 0]) * Unsqueeze(Gather(scales, ids), -1)

A handful of strided columns per token is cheap next to the head's full read of the table.

`store_embedding_fp16` is the float alternative (`--dtype q8 --embedding float`): the same E^T
layout stored once in fp16 and computed in fp32. The head reads it through a Cast that onnxruntime
folds into an fp32 constant at load: in wasm an fp32 MatMul costs half an int8 one per weight
(bench/results/wasm-formats.md), and the head is a third of a 0.8B decode step.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from qwen35web.export.passes.graph_match import add_initializer, shared_constant, weight_array
from qwen35web.export.passes.quantize_graph import (
    drop_unused_initializer,
    dynamic_quantize_matmul_node,
    embedding_lookup,
    remove_transposes,
    replace_node,
    tied_heads,
)
from qwen35web.export.quantization.columns import quantize_columns

log = logging.getLogger(__name__)


def _find_tied_table(graph: ir.Graph) -> tuple[ir.Node, ir.Value, list, ir.Value, int] | None:
    """(lookup, table, tied heads, ids, ids rank) when the table is read in the known ways, else None."""
    found = embedding_lookup(graph)
    if found is None:
        log.warning("no embedding Gather on a float initializer: embedding left as it is")
        return None
    lookup, table = found
    heads = tied_heads(table, lookup)
    ids = lookup.inputs[1]
    ids_rank = None if ids is None or ids.shape is None else len(ids.shape)
    if heads is None or ids is None or ids_rank is None or table.dtype != ir.DataType.FLOAT:
        log.warning("embedding %s: read in an unknown way: left float", table.name)
        return None
    return lookup, table, heads, ids, ids_rank


def _columns_as_rows(stored: ir.Value, ids: ir.Value, ids_rank: int, prefix: str) -> list[ir.Node]:
    """Gather the ids' columns of E^T [D, V] and put D last: float rows [*ids, D] (last node's output)."""
    columns = ir.node("Gather", [stored, ids], {"axis": 1}, name=f"{prefix}_columns")  # [D, *ids]
    as_float = ir.node("Cast", [columns.outputs[0]], {"to": ir.DataType.FLOAT}, name=f"{prefix}_cast")
    perm = [*range(1, ids_rank + 1), 0]
    rows = ir.node("Transpose", [as_float.outputs[0]], {"perm": perm}, name=f"{prefix}_rows")  # [*ids, D]
    return [columns, as_float, rows]


def store_embedding_fp16(graph: ir.Graph) -> bool:
    """E [V, D] fp32 -> E^T [D, V] fp16, read by the lookup (Gather axis 1) and the tied heads."""
    found = _find_tied_table(graph)
    if found is None:
        return False
    lookup, table, heads, ids, ids_rank = found
    array = weight_array(table)  # [V, D]
    stored = add_initializer(
        graph, f"{table.name or 'embedding'}.fp16_t", np.ascontiguousarray(array.T, np.float16)
    )
    nodes = _columns_as_rows(stored, ids, ids_rank, "embedding_fp16")
    replace_node(graph, lookup, nodes)
    head_weight = ir.node("Cast", [stored], {"to": ir.DataType.FLOAT}, name="lm_head_fp32")  # folded at load
    if heads:
        graph.insert_before(heads[0][1], head_weight)
    for _, matmul in heads:
        matmul.replace_input_with(1, head_weight.outputs[0])
    remove_transposes(graph, heads)
    drop_unused_initializer(graph, table)
    log.info(
        "embedding %s stored once as fp16 E^T, read by the lookup and %d tied head(s)", table.name, len(heads)
    )
    return True


def _lookup_nodes(
    ids: ir.Value, weight: ir.Value, scales: ir.Value, ids_rank: int, axes: ir.Value
) -> list[ir.Node]:
    """ids [*ids] -> float rows [*ids, D]."""
    columns, as_float, rows = _columns_as_rows(weight, ids, ids_rank, "embedding_q8")  # unscaled
    row_scales = ir.node("Gather", [scales, ids], {"axis": 0}, name="embedding_q8_scales")  # [*ids]
    unsqueeze = ir.node("Unsqueeze", [row_scales.outputs[0], axes], name="embedding_q8_scales_last")
    scaled = ir.node("Mul", [rows.outputs[0], unsqueeze.outputs[0]], name="embedding_q8")
    return [columns, as_float, rows, row_scales, unsqueeze, scaled]


def quantize_embedding_table_int8(graph: ir.Graph) -> bool:
    """Quantize the embedding table (and tied heads) in place; False if the graph has none to do."""
    found = _find_tied_table(graph)
    if found is None:
        return False
    lookup, table, heads, ids, ids_rank = found
    array = weight_array(table)  # [V, D]
    quantized, scales = quantize_columns(array.T)  # [D, V] int8, [V]
    base = table.name or "embedding"
    weight = add_initializer(graph, f"{base}.q8", quantized)
    scale_values = add_initializer(graph, f"{base}.q8_scales", scales)
    axes = shared_constant(graph, "embedding_q8_last_axis", np.array([-1], dtype=np.int64))
    nodes = _lookup_nodes(ids, weight, scale_values, ids_rank, axes)
    replace_node(graph, lookup, nodes)
    for _, matmul in heads:
        hidden_states = matmul.inputs[0]  # [..., D]
        assert hidden_states is not None
        replace_node(
            graph,
            matmul,
            [dynamic_quantize_matmul_node(hidden_states, weight, scale_values, f"{matmul.name}_q8")],
        )
    remove_transposes(graph, heads)
    drop_unused_initializer(graph, table)
    log.info(
        "embedding %s [%d, %d] stored once as int8, read by the lookup and %d tied head(s): %.1f -> %.1f MB",
        table.name,
        *array.shape,
        len(heads),
        array.nbytes / 1e6,
        (quantized.nbytes + scales.nbytes) / 1e6,
    )
    return True
