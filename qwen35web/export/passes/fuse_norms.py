"""Fusion passes for the decoder's RMS norms (onnxruntime kernels; `--ops fused` only).

The traced graph spells every norm out as
    normed = x * Reciprocal(Sqrt(ReduceMean(x ** 2, axes=[-1]) + eps))      # computed in fp32
and then
  * zero-centred RMSNorm:  normed * (1 + w)          -> SimplifiedLayerNormalization(x, 1 + w)
  * residual + RMSNorm:    Add(a, b) feeding a norm  -> com.microsoft::SkipSimplifiedLayerNormalization,
                                                         whose 4th output is the sum a + b
  * L2 normalisation:      x * rsqrt(sum(x^2) + eps) -> SimplifiedLayerNormalization(x, 1/sqrt(D)),
                                                         epsilon eps / D (the delta rule's q and k)
  * gated output norm:     (w * normed) * silu(z)    -> SimplifiedLayerNormalization(x, w) * silu(z),
                                                         or (opt-in) com.microsoft::GatedRMSNorm(x, w, z)

`(1 + w)` is usually already an initializer (the exporter folds constants); when it is still an
`Add(1, w)` it is folded here into a new initializer, leaving `w` for its other readers.
GatedRMSNorm is emitted without its `activation` attribute: silu is the default in onnxruntime
1.31, and onnxruntime-web 1.30 (the browser build) rejects the attribute but gates with silu.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import (
    add_initializer,
    binary_inputs,
    constant_array,
    int_attribute,
    int_constants,
    ints_attribute,
    is_last_axis,
    producer,
    rank,
    removable,
    scalar_constant,
    shared_constant,
    static_dim,
)

log = logging.getLogger(__name__)

SIMPLIFIED_LAYER_NORM = "SimplifiedLayerNormalization"  # onnxruntime registers it in the ONNX domain
SKIP_SIMPLIFIED_LAYER_NORM = "SkipSimplifiedLayerNormalization"
GATED_RMS_NORM = "GatedRMSNorm"
L2_NORM = "L2Norm"  # counted apart, but emitted as SimplifiedLayerNormalization


@dataclass(frozen=True)
class RmsCore:
    """`normed = x * rsqrt(reduce(x^2, -1) + eps)` as traced; `nodes` are the six ops computing it.

    `reduction` is "ReduceMean" for an RMS norm and "ReduceSum" for an L2 normalisation.
    """

    x: ir.Value
    epsilon: float
    nodes: tuple[ir.Node, ...]
    reduction: str


def _match_square(value: ir.Value | None, x: ir.Value) -> ir.Node | None:
    """`x ** 2` as Pow(x, 2) or Mul(x, x)."""
    power = producer(value, "Pow")
    if power is not None and power.inputs[0] is x and scalar_constant(power.inputs[1]) == 2.0:
        return power
    square = producer(value, "Mul")
    if square is not None and square.inputs[0] is x and square.inputs[1] is x:
        return square
    return None


def _reduce_axes(mean: ir.Node) -> list[int] | None:
    # ReduceMean takes axes as an input from opset 18 and as an attribute before it.
    if len(mean.inputs) > 1:
        return int_constants(mean.inputs[1])
    return ints_attribute(mean, "axes")


def _match_mean_square_plus_eps(
    value: ir.Value | None, x: ir.Value
) -> tuple[float, list[ir.Node], str] | None:
    """`ReduceMean|ReduceSum(x ** 2, axes=[-1], keepdims=1) + eps` -> (eps, nodes, reduction)."""
    add = producer(value, "Add")
    pair = binary_inputs(add)
    if add is None or pair is None:
        return None
    for reduced, eps_value in (pair, pair[::-1]):
        reduce = producer(reduced, "ReduceMean") or producer(reduced, "ReduceSum")
        epsilon = scalar_constant(eps_value)
        if reduce is None or epsilon is None or int_attribute(reduce, "keepdims", 1) != 1:
            continue
        if not is_last_axis(_reduce_axes(reduce), rank(x)):
            continue
        square = _match_square(reduce.inputs[0], x)
        if square is not None:
            return epsilon, [square, reduce, add], reduce.op_type
    return None


def match_rms_core(normed: ir.Value | None) -> RmsCore | None:
    """Match `x * Reciprocal(Sqrt(reduce(x^2) + eps))` ending at `normed` (either Mul operand order)."""
    scale_mul = producer(normed, "Mul")
    pair = binary_inputs(scale_mul)
    if scale_mul is None or pair is None:
        return None
    for x, inverse in (pair, pair[::-1]):
        reciprocal = producer(inverse, "Reciprocal")
        root = producer(reciprocal.inputs[0], "Sqrt") if reciprocal is not None else None
        if reciprocal is None or root is None:
            continue
        found = _match_mean_square_plus_eps(root.inputs[0], x)
        if found is not None:
            epsilon, nodes, reduction = found
            return RmsCore(x, epsilon, (*nodes, root, reciprocal, scale_mul), reduction)
    return None


def _norm_weight(graph: ir.Graph, value: ir.Value, width: int | None) -> ir.Value | None:
    """The norm's scale as a constant value of shape [width]: as is, or `Add(c1, c2)` folded."""
    array = constant_array(value)
    if array is None:
        adder = producer(value, "Add")
        pair = binary_inputs(adder)
        if pair is None:
            return None
        first, second = constant_array(pair[0]), constant_array(pair[1])
        if first is None or second is None:
            return None
        # Same fp32 arithmetic as the model's `1.0 + weight`; a new initializer, so a `w` that
        # other nodes read stays as it is (the dead Add and `w` go with the unused-node sweep).
        array = np.asarray(first + second, dtype=np.result_type(first, second))
        value = add_initializer(graph, f"{pair[1].name or 'norm_weight'}_plus_one", array)
    if array.ndim != 1 or (width is not None and array.shape[0] != width):
        return None
    return value


def _splice(graph: ir.Graph, matched: list[ir.Node], new_node: ir.Node, final: ir.Node) -> None:
    # At the final node's place every input of the fused node is defined and every reader follows.
    ir.convenience.replace_nodes_and_values(
        graph, final, matched, [new_node], [final.outputs[0]], [new_node.outputs[0]]
    )


def _match_silu(value: ir.Value) -> tuple[ir.Value, list[ir.Node]] | None:
    """`z * Sigmoid(z)` (either order) -> (z, [Sigmoid, Mul])."""
    silu = producer(value, "Mul")
    pair = binary_inputs(silu)
    if silu is None or pair is None:
        return None
    for z, gate in (pair, pair[::-1]):
        sigmoid = producer(gate, "Sigmoid")
        if sigmoid is not None and sigmoid.inputs[0] is z:
            return z, [sigmoid, silu]
    return None


def _fuse_gated_norm(graph: ir.Graph, node: ir.Node) -> bool:
    """`(w * normed(x)) * silu(z)` -> GatedRMSNorm(x, w, z)."""
    pair = binary_inputs(node)
    if pair is None:
        return False
    for weighted, gate in (pair, pair[::-1]):
        silu = _match_silu(gate)
        weight_mul = producer(weighted, "Mul")
        weight_pair = binary_inputs(weight_mul)
        if silu is None or weight_mul is None or weight_pair is None:
            continue
        z, silu_nodes = silu
        for weight_value, normed in (weight_pair, weight_pair[::-1]):
            core = match_rms_core(normed)
            if core is None or core.reduction != "ReduceMean" or z.shape is None or z.shape != core.x.shape:
                continue
            weight = _norm_weight(graph, weight_value, static_dim(core.x, -1))
            matched = [*core.nodes, weight_mul, *silu_nodes, node]
            if weight is None or not removable(matched, [node.outputs[0]]):
                continue
            fused = ir.node(
                GATED_RMS_NORM,
                [core.x, weight, z],
                {"epsilon": core.epsilon},
                domain=MS_DOMAIN,
                name=f"{node.name or 'gated_norm'}_fused",
            )
            _splice(graph, matched, fused, node)
            return True
    return False


def _fuse_rms_norm(graph: ir.Graph, node: ir.Node) -> bool:
    """`normed(x) * (1 + w)` -> SimplifiedLayerNormalization(x, 1 + w) over the last axis."""
    pair = binary_inputs(node)
    if pair is None:
        return False
    for normed, weight_value in (pair, pair[::-1]):
        core = match_rms_core(normed)
        if core is None or core.reduction != "ReduceMean":
            continue
        weight = _norm_weight(graph, weight_value, static_dim(core.x, -1))
        matched = [*core.nodes, node]
        if weight is None or not removable(matched, [node.outputs[0]]):
            continue
        fused = ir.node(
            SIMPLIFIED_LAYER_NORM,
            [core.x, weight],
            {"axis": -1, "epsilon": core.epsilon, "stash_type": 1},
            name=f"{node.name or 'rms_norm'}_fused",
        )
        _splice(graph, matched, fused, node)
        return True
    return False


def _fuse_l2_norm(graph: ir.Graph, node: ir.Node) -> bool:
    """`x * rsqrt(sum(x^2) + eps)` -> SimplifiedLayerNormalization(x, 1/sqrt(D), eps/D).

    x / sqrt(sum + eps) = x / sqrt(mean + eps/D) / sqrt(D): the same value, rounded differently.
    """
    core = match_rms_core(node.outputs[0])
    width = static_dim(core.x, -1) if core is not None else None
    if core is None or core.reduction != "ReduceSum" or width is None:
        return False
    if not removable(core.nodes, [node.outputs[0]]):
        return False
    dtype = core.x.dtype.numpy() if core.x.dtype is not None else np.float32
    scale = np.full([width], 1.0 / np.sqrt(width), dtype=dtype)
    weight = shared_constant(graph, f"l2_norm_scale_{width}", scale)
    fused = ir.node(
        SIMPLIFIED_LAYER_NORM,
        [core.x, weight],
        {"axis": -1, "epsilon": core.epsilon / width, "stash_type": 1},
        name=f"{node.name or 'l2_norm'}_fused",
    )
    _splice(graph, list(core.nodes), fused, node)
    return True


def fuse_rms_norms(model: ir.Model, gated_kernel: bool = False) -> dict[str, int]:
    """Fuse every traced RMS norm; returns how many of each kernel were emitted.

    With `gated_kernel`, `(w * normed) * silu(z)` becomes one GatedRMSNorm; without it (the
    default) only its `w * normed` part becomes a SimplifiedLayerNormalization and the silu gate
    stays: onnxruntime 1.31's CPU GatedRMSNorm measured 13-22x slower than the ops it replaces
    (1 x 512 x 16 x 128: 26 ms against 1.2 ms), and the wasm build runs the same CPU kernel.
    Gated norms go first when enabled, since their inner `w * normed` also matches a plain norm.
    """
    graph = model.graph
    counts = {GATED_RMS_NORM: 0, SIMPLIFIED_LAYER_NORM: 0}
    if gated_kernel:
        for node in list(graph):
            if node.graph is graph and node.op_type == "Mul" and node.domain == "":
                counts[GATED_RMS_NORM] += _fuse_gated_norm(graph, node)
    for node in list(graph):
        if node.graph is graph and node.op_type == "Mul" and node.domain == "":
            counts[SIMPLIFIED_LAYER_NORM] += _fuse_rms_norm(graph, node)
    counts[L2_NORM] = 0
    for node in list(graph):
        if node.graph is graph and node.op_type == "Mul" and node.domain == "":
            counts[L2_NORM] += _fuse_l2_norm(graph, node)
    if counts[GATED_RMS_NORM]:
        model.opset_imports.setdefault(MS_DOMAIN, 1)
    return counts


def _skip_operands(norm: ir.Node) -> tuple[ir.Node, ir.Value, ir.Value] | None:
    """The residual Add feeding a norm and its two [B, T, D] operands, when the kernel accepts them."""
    adder = producer(norm.inputs[0], "Add")
    pair = binary_inputs(adder)
    if adder is None or pair is None:
        return None
    first, second = pair
    # The kernel wants 3D (or 2D) input and skip of the same shape: no broadcasting.
    if rank(first) != 3 or first.shape != second.shape or static_dim(first, -1) is None:
        return None
    if adder.outputs[0].is_graph_output():
        return None
    return adder, first, second


def fold_residual_adds(model: ir.Model) -> int:
    """`SimplifiedLayerNormalization(a + b)` -> SkipSimplifiedLayerNormalization(a, b).

    The sum stays available (the kernel's 4th output) for the residual stream's next Add.
    """
    graph = model.graph
    count = 0
    for norm in list(graph):
        if norm.op_type != SIMPLIFIED_LAYER_NORM or norm.domain != "" or norm.graph is not graph:
            continue
        operands = _skip_operands(norm)
        if operands is None:
            continue
        adder, first, second = operands
        epsilon = norm.attributes["epsilon"].as_float()
        fused = ir.node(
            SKIP_SIMPLIFIED_LAYER_NORM,
            [first, second, norm.inputs[1]],
            {"epsilon": epsilon},
            domain=MS_DOMAIN,
            num_outputs=4,
            name=f"{norm.name or 'norm'}_skip",
        )
        output, _mean, _inv_std, total = fused.outputs
        # Placed where the Add was: its operands and gamma exist there, all readers come later.
        ir.convenience.replace_nodes_and_values(
            graph, adder, [adder, norm], [fused], [adder.outputs[0], norm.outputs[0]], [total, output]
        )
        # Unnamed outputs are absent in ONNX: the kernel skips the training-only statistics.
        _mean.name = _inv_std.name = ""
        count += 1
    if count:
        model.opset_imports.setdefault(MS_DOMAIN, 1)
    return count
