"""Small helpers for matching the traced decoder's subgraphs in onnx-ir (used by the fusion passes).

The fusion passes walk from an anchor node up through producers. These helpers answer the
questions every such walk asks: "is this value made by op X?", "is it a constant, and which?",
"may the matched nodes be deleted without breaking another consumer?".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import onnx_ir as ir


def producer(value: ir.Value | None, op_type: str, domain: str = "") -> ir.Node | None:
    """The node that makes `value` if it is `op_type` in `domain`, else None."""
    if value is None:
        return None
    node = value.producer()
    if node is None or node.op_type != op_type or node.domain != domain:
        return None
    return node


def constant_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant contents (initializer or Constant node), else None: for a matcher,
    which asks whether a value is constant. See `weight_array` for one already known to be."""
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def weight_array(value: ir.Value) -> np.ndarray:
    """A constant the caller has already matched (a weight initializer), as numpy: a view of the
    stored tensor where possible. Where `constant_array` answers None, this one fails an assertion,
    since a non-constant here is a bug in the pass, not a graph to leave alone."""
    array = constant_array(value)
    assert array is not None, f"{value.name} is not a constant"
    return array


def scalar_constant(value: ir.Value | None) -> float | None:
    """A constant holding exactly one element, as a float; else None."""
    array = constant_array(value)
    if array is None or array.size != 1:
        return None
    return float(array.reshape(()))


def int_constants(value: ir.Value | None) -> list[int] | None:
    """A constant integer tensor as a flat list (axes, starts, shapes); else None."""
    array = constant_array(value)
    if array is None or array.dtype.kind not in "iu":
        return None
    return [int(x) for x in array.reshape(-1)]


def binary_inputs(node: ir.Node | None) -> tuple[ir.Value, ir.Value] | None:
    """Both inputs of a two-input node, or None when it is missing or an input is absent."""
    if node is None or len(node.inputs) != 2:
        return None
    first, second = node.inputs
    if first is None or second is None:
        return None
    return first, second


def int_attribute(node: ir.Node, name: str, default: int) -> int:
    attribute = node.attributes.get(name)
    return default if attribute is None else attribute.as_int()


def ints_attribute(node: ir.Node, name: str) -> list[int] | None:
    attribute = node.attributes.get(name)
    return None if attribute is None else list(attribute.as_ints())


def rank(value: ir.Value) -> int | None:
    return None if value.shape is None else len(value.shape)


def static_dim(value: ir.Value, axis: int) -> int | None:
    """A dimension of the value's shape when it is a known integer."""
    if value.shape is None or not -len(value.shape) <= axis < len(value.shape):
        return None
    dim = value.shape[axis]
    return dim if isinstance(dim, int) else None


def is_last_axis(axes: Sequence[int] | None, value_rank: int | None) -> bool:
    """True when `axes` names exactly the last axis of a tensor of rank `value_rank`."""
    if axes is None or len(axes) != 1:
        return False
    return axes[0] == -1 or (value_rank is not None and axes[0] == value_rank - 1)


def removable(nodes: Iterable[ir.Node], kept_outputs: Iterable[ir.Value]) -> bool:
    """True when nothing outside `nodes` reads their outputs, apart from `kept_outputs`.

    A fusion may delete its matched nodes only if no other consumer (or graph output) still
    needs an intermediate value; `kept_outputs` are the values the fusion replaces.
    """
    node_set = set(nodes)
    kept = set(kept_outputs)
    for node in node_set:
        for output in node.outputs:
            if output in kept:
                continue
            if output.is_graph_output():
                return False
            if any(user not in node_set for user, _ in output.uses()):
                return False
    return True


def add_initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """Register a new constant under a name not yet taken in the graph."""
    taken = set(graph.initializers)
    unique, suffix = name, 1
    while unique in taken:
        unique, suffix = f"{name}_{suffix}", suffix + 1
    value = ir.Value(
        name=unique,
        shape=ir.Shape(array.shape),
        type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
        const_value=ir.tensor(array, name=unique),
    )
    graph.register_initializer(value)
    return value


def shared_constant(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """An initializer `name` holding `array`: reused when one with equal contents exists."""
    existing = graph.initializers.get(name)
    if existing is not None and existing.const_value is not None:
        current = existing.const_value.numpy()
        if current.dtype == array.dtype and current.shape == array.shape and (current == array).all():
            return existing
    return add_initializer(graph, name, array)
