"""The graph side the quantization passes (q4, q8) share: finding the constant weights, the
embedding table and the LM heads that read it; the kernels' nodes; dropping what is no longer read.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx_ir as ir

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import add_initializer
from qwen35web.export.quantization.nbits import QuantizedWeight

FLOAT_TYPES = {False: ir.DataType.FLOAT, True: ir.DataType.FLOAT16}  # by fp16_scales


def drop_unused_initializer(graph: ir.Graph, value: ir.Value) -> None:
    """Remove a float initializer nobody reads any more, so its memory can go."""
    if value.name and value.name in graph.initializers and not value.uses() and not value.is_graph_output():
        del graph.initializers[value.name]


def constant_weight(
    node: ir.Node, dtypes: tuple[ir.DataType, ...] = tuple(FLOAT_TYPES.values())
) -> ir.Value | None:
    """The MatMul's right operand if it is a 2-D initializer [K, N] of one of `dtypes`."""
    if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return None
    weight = node.inputs[1]
    if weight is None or not weight.is_initializer() or weight.const_value is None:
        return None
    if weight.dtype not in dtypes or len(weight.const_value.shape) != 2:
        return None
    return weight


def embedding_lookup(graph: ir.Graph) -> tuple[ir.Node, ir.Value] | None:
    """The Gather that reads a 2-D float initializer along axis 0 (the token embedding)."""
    for node in graph:
        if node.op_type != "Gather" or node.domain not in ("", "ai.onnx"):
            continue
        table = node.inputs[0]
        axis = node.attributes.get_int("axis", 0)
        if table is None or not table.is_initializer() or table.const_value is None:
            continue
        if axis == 0 and len(table.const_value.shape) == 2 and table.dtype in FLOAT_TYPES.values():
            return node, table
    return None


def tied_heads(table: ir.Value, lookup: ir.Node) -> list[tuple[ir.Node, ir.Node]] | None:
    """(Transpose, MatMul) pairs that use the table as an LM head; None if anything else reads it."""
    heads = []
    for node in table.consumers():
        if node is lookup:
            continue
        perm = node.attributes.get_ints("perm", None)
        if node.op_type != "Transpose" or perm is None or list(perm) != [1, 0]:
            return None
        transposed = node.outputs[0]
        readers = transposed.consumers()
        if transposed.is_graph_output() or not readers:
            return None
        for reader in readers:
            if (
                reader.op_type != "MatMul"
                or reader.inputs[1] is not transposed
                or reader.inputs[0] is transposed
            ):
                return None
            heads.append((node, reader))
    return heads


def untied_heads(graph: ir.Graph) -> list[ir.Node]:
    """MatMuls on a constant weight [D, V] with V the embedding table's rows: an untied LM head.

    Nothing else in a Qwen3.5 decoder has the vocabulary as its output width.
    """
    found = embedding_lookup(graph)
    if found is None:
        return []
    vocab, hidden = static_shape(found[1])
    return [
        node
        for node in graph
        if (weight := constant_weight(node)) is not None and static_shape(weight) == (hidden, vocab)
    ]


def static_shape(value: ir.Value) -> tuple[int, ...]:
    """A constant's shape, without reading a lazy weight."""
    assert value.const_value is not None, f"{value.name} is not a constant"
    return tuple(int(d) for d in value.const_value.shape.numpy())


def remove_transposes(graph: ir.Graph, heads: list[tuple[ir.Node, ir.Node]]) -> None:
    """Drop the tied heads' Transposes of the table once their MatMuls read something else."""
    for transpose in {id(t): t for t, _ in heads}.values():
        graph.remove(transpose, safe=True)


@dataclass(frozen=True)
class QuantizeSettings:
    """How a block format quantizes: MatMulNBits' attributes and the scales' float type."""

    block_size: int
    accuracy_level: int
    symmetric: bool
    fp16_scales: bool

    @property
    def float_type(self) -> ir.DataType:
        return FLOAT_TYPES[self.fp16_scales]


def check_float_type(value: ir.Value, settings: QuantizeSettings) -> None:
    if value.dtype != settings.float_type:
        wanted = "fp16 (q4f16: trace in fp16)" if settings.fp16_scales else "fp32 (q4: trace in fp32)"
        raise ValueError(
            f"weight {value.name!r} is {value.dtype}; fp16_scales={settings.fp16_scales} needs {wanted}"
        )


@dataclass(frozen=True)
class QuantizedInitializers:
    """A QuantizedWeight registered in the graph; several nodes may read the same values."""

    packed: ir.Value
    scales: ir.Value
    zero_points: ir.Value | None
    bits: int


def register_quantized(graph: ir.Graph, base_name: str, weight: QuantizedWeight) -> QuantizedInitializers:
    suffix = f"q{weight.bits}"
    zero_points = None
    if weight.zero_points is not None:
        zero_points = add_initializer(graph, f"{base_name}.{suffix}_zero_points", weight.zero_points)
    return QuantizedInitializers(
        packed=add_initializer(graph, f"{base_name}.{suffix}", weight.packed),
        scales=add_initializer(graph, f"{base_name}.{suffix}_scales", weight.scales),
        zero_points=zero_points,
        bits=weight.bits,
    )


def matmul_nbits_node(
    activations: ir.Value,
    weight: QuantizedInitializers,
    k: int,
    n: int,
    settings: QuantizeSettings,
    name: str,
) -> ir.Node:
    """activations [..., K] x `bits`-bit weight [K, N] -> [..., N]."""
    inputs = [activations, weight.packed, weight.scales]
    if weight.zero_points is not None:
        inputs.append(weight.zero_points)
    attributes = {"K": k, "N": n, "bits": weight.bits, "block_size": settings.block_size}
    if settings.accuracy_level:
        # Left out when 0, as onnxruntime's quantizer does: some EPs reject the attribute.
        attributes["accuracy_level"] = settings.accuracy_level
    return ir.node("MatMulNBits", inputs, attributes, domain=MS_DOMAIN, name=name)


def dynamic_quantize_matmul_node(
    activations: ir.Value, weight: ir.Value, scales: ir.Value, name: str
) -> ir.Node:
    """activations [..., K] x int8 weight [K, N] (scales [N]) -> float [..., N]."""
    return ir.node("DynamicQuantizeMatMul", [activations, weight, scales], domain=MS_DOMAIN, name=name)


def replace_node(graph: ir.Graph, old: ir.Node, new: list[ir.Node]) -> None:
    """Put `new` (the last node computing what `old` did) in `old`'s place."""
    ir.convenience.replace_nodes_and_values(graph, old, [old], new, list(old.outputs), list(new[-1].outputs))
