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
The norm fusions are onnxscript rewriter rules (commute=True tries every operand order of the
Adds and Muls); the residual fold stays hand-written (see FoldResidualAdds for why).
GatedRMSNorm is emitted without its `activation` attribute: silu is the default in onnxruntime
1.31, and onnxruntime-web 1.30 (the browser build) rejects the attribute but gates with silu.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import (
    binary_inputs,
    constant_array,
    int_attribute,
    int_constants,
    is_last_axis,
    producer,
    rank,
    scalar_constant,
    static_dim,
)

log = logging.getLogger(__name__)

SIMPLIFIED_LAYER_NORM = "SimplifiedLayerNormalization"  # onnxruntime registers it in the ONNX domain
SKIP_SIMPLIFIED_LAYER_NORM = "SkipSimplifiedLayerNormalization"
GATED_RMS_NORM = "GatedRMSNorm"
L2_NORM = "L2Norm"  # counted apart, but emitted as SimplifiedLayerNormalization


def _rms_core(op: Any, x: Any, exponent: Any, axes: Any, epsilon: Any, reduction: str) -> Any:
    """`x * Reciprocal(Sqrt(reduce(x ** 2, axes) + eps))`, the square as Pow(x, 2) or Mul(x, x).

    `reduction` is "ReduceMean" for an RMS norm and "ReduceSum" for an L2 normalisation; its
    output is bound as `reduced` so the checks can read its attributes.
    """
    square = pattern.OrValue([op.Pow(x, exponent), op.Mul(x, x)])
    reduced = getattr(op, reduction)(square, axes, _allow_other_attributes=True, _outputs=["reduced"])
    return op.Mul(x, op.Reciprocal(op.Sqrt(op.Add(reduced, epsilon))))


def _core_failure(x: ir.Value, exponent: ir.Value | None, axes: ir.Value, reduced: ir.Value) -> str | None:
    """Why the matched core is not a norm over the last axis (None when it is)."""
    if exponent is not None and scalar_constant(exponent) != 2.0:
        return "the power is not a constant 2"
    reduce = reduced.producer()
    if reduce is None or int_attribute(reduce, "keepdims", 1) != 1:
        return "the reduction drops its axis"
    if not is_last_axis(int_constants(axes), rank(x)):
        return "the reduction is not over the last axis alone"
    return None


class _Weights:
    """The norm's scale as a constant of shape [D]: as is, or `Add(c1, c2)` folded to a new one.

    `(1 + w)` is usually already an initializer (the exporter folds constants); when it is still
    an `Add(1, w)` the sum becomes a new initializer, so a `w` that other nodes read stays as it
    is (the dead Add and `w` go with the unused-node sweep). Same fp32 arithmetic as the model's
    `1.0 + weight`.
    """

    def __init__(self) -> None:
        self._folded: tuple[str, np.ndarray] | None = None
        self._value: ir.Value | None = None

    def check(self, graph: ir.Graph | ir.Function, value: ir.Value, width: int | None) -> bool:
        self._folded, self._value = None, value
        array = constant_array(value)
        if array is None:
            pair = binary_inputs(producer(value, "Add"))
            first, second = (constant_array(pair[0]), constant_array(pair[1])) if pair else (None, None)
            if pair is None or first is None or second is None or not isinstance(graph, ir.Graph):
                return False
            array = np.asarray(first + second, dtype=np.result_type(first, second))
            self._folded = (_unique_name(graph, f"{pair[1].name or 'norm_weight'}_plus_one"), array)
        return array.ndim == 1 and (width is None or array.shape[0] == width)

    def value(self, op: Any) -> ir.Value:
        """The checked scale, as the rewrite's input (a folded sum becomes the rewrite's initializer)."""
        if self._folded is None:
            assert self._value is not None
            return self._value
        name, array = self._folded
        return op.initializer(ir.tensor(array, name=name), name=name)


def _unique_name(graph: ir.Graph, name: str) -> str:
    unique, suffix = name, 1
    while unique in graph.initializers:
        unique, suffix = f"{name}_{suffix}", suffix + 1
    return unique


class _RmsNormRule(pattern.RewriteRuleClassBase):
    """`normed(x) * (1 + w)` -> SimplifiedLayerNormalization(x, 1 + w) over the last axis."""

    def __init__(self, name: str = SIMPLIFIED_LAYER_NORM) -> None:
        super().__init__(name)
        self._weights = _Weights()

    def pattern(self, op: Any, x: Any, exponent: Any, axes: Any, epsilon: Any, scale: Any) -> Any:  # type: ignore[override]
        return op.Mul(_rms_core(op, x, exponent, axes, epsilon, "ReduceMean"), scale)

    def check(  # type: ignore[override]
        self, context: Any, x: Any, exponent: Any, axes: Any, epsilon: Any, scale: Any, reduced: Any, **_: Any
    ) -> Any:
        result = pattern.MatchResult()
        failure = _core_failure(x, exponent, axes, reduced)
        if failure is None and scalar_constant(epsilon) is None:
            failure = "epsilon is not a scalar constant"
        if failure is None and not self._weights.check(context.graph_or_function, scale, static_dim(x, -1)):
            failure = "the scale is not a constant [D]"
        return result if failure is None else result.fail(failure)

    def rewrite(self, op: Any, x: Any, epsilon: Any, **_: Any) -> Any:  # type: ignore[override]
        return op.SimplifiedLayerNormalization(
            x, self._weights.value(op), axis=-1, epsilon=scalar_constant(epsilon), stash_type=1
        )


class _GatedNormRule(_RmsNormRule):
    """`(w * normed(x)) * silu(z)` -> GatedRMSNorm(x, w, z)."""

    def __init__(self) -> None:
        super().__init__(GATED_RMS_NORM)

    def pattern(self, op: Any, x: Any, exponent: Any, axes: Any, epsilon: Any, scale: Any, z: Any) -> Any:  # type: ignore[override]
        weighted = super().pattern(op, x, exponent, axes, epsilon, scale)
        return op.Mul(weighted, op.Mul(z, op.Sigmoid(z)))

    def check(  # type: ignore[override]
        self,
        context: Any,
        x: Any,
        exponent: Any,
        axes: Any,
        epsilon: Any,
        scale: Any,
        reduced: Any,
        z: Any,
        **_: Any,
    ) -> Any:
        if z.shape is None or z.shape != x.shape:
            return pattern.MatchResult().fail("the gate's shape differs from the input's")
        return super().check(context, x, exponent, axes, epsilon, scale, reduced)

    def rewrite(self, op: Any, x: Any, epsilon: Any, z: Any, **_: Any) -> Any:  # type: ignore[override]
        weight = self._weights.value(op)
        return op.GatedRMSNorm(x, weight, z, epsilon=scalar_constant(epsilon), _domain=MS_DOMAIN)


class _L2NormRule(pattern.RewriteRuleClassBase):
    """`x * rsqrt(sum(x^2) + eps)` -> SimplifiedLayerNormalization(x, 1/sqrt(D), eps/D).

    x / sqrt(sum + eps) = x / sqrt(mean + eps/D) / sqrt(D): the same value, rounded differently.
    """

    def __init__(self) -> None:
        super().__init__(L2_NORM)
        self._scale: ir.Value | np.ndarray | None = None

    def pattern(self, op: Any, x: Any, exponent: Any, axes: Any, epsilon: Any) -> Any:  # type: ignore[override]
        return _rms_core(op, x, exponent, axes, epsilon, "ReduceSum")

    def check(  # type: ignore[override]
        self, context: Any, x: Any, exponent: Any, axes: Any, epsilon: Any, reduced: Any, **_: Any
    ) -> Any:
        result = pattern.MatchResult()
        failure = _core_failure(x, exponent, axes, reduced)
        width = static_dim(x, -1)
        if failure is None and (scalar_constant(epsilon) is None or width is None):
            failure = "epsilon or the width is unknown"
        if failure is None and not isinstance(context.graph_or_function, ir.Graph):
            failure = "a function cannot hold the scale initializer"
        if failure is not None:
            return result.fail(failure)
        assert width is not None
        dtype = x.dtype.numpy() if x.dtype is not None else np.float32
        scale = np.full([width], 1.0 / np.sqrt(width), dtype=dtype)
        # One [D] scale per width, shared by every L2 norm of that width.
        existing = context.graph_or_function.initializers.get(self._scale_name(width))
        same = existing is not None and existing.const_value is not None
        same = same and np.array_equal(existing.const_value.numpy(), scale)
        self._scale = existing if same else scale
        return result

    @staticmethod
    def _scale_name(width: int) -> str:
        return f"l2_norm_scale_{width}"

    def rewrite(self, op: Any, x: Any, epsilon: Any, **_: Any) -> Any:  # type: ignore[override]
        width = static_dim(x, -1)
        assert width is not None
        scale = self._scale
        if isinstance(scale, np.ndarray):
            name = self._scale_name(width)
            scale = op.initializer(ir.tensor(scale, name=name), name=name)
        eps = scalar_constant(epsilon)
        assert eps is not None
        return op.SimplifiedLayerNormalization(x, scale, axis=-1, epsilon=eps / width, stash_type=1)


def _apply(rule: type[pattern.RewriteRuleClassBase], model: ir.Model) -> int:
    """Apply one rule (every operand order of its commutative ops); returns the rewrite count."""
    return pattern.RewriteRuleSet([rule.rule()], commute=True).apply_to_model(model)


class FuseRmsNorms(ir.passes.InPlacePass):
    """Fuse every traced RMS norm; `counts` says how many of each kernel the last call emitted.

    With `gated_kernel`, `(w * normed) * silu(z)` becomes one GatedRMSNorm; without it (the
    default) only its `w * normed` part becomes a SimplifiedLayerNormalization and the silu gate
    stays: onnxruntime 1.31's CPU GatedRMSNorm measured 13-22x slower than the ops it replaces
    (1 x 512 x 16 x 128: 26 ms against 1.2 ms), and the wasm build runs the same CPU kernel.
    Gated norms go first when enabled, in a rule set of their own: their inner `w * normed`
    comes earlier in graph order and also matches a plain norm.
    """

    def __init__(self, gated_kernel: bool = False) -> None:
        super().__init__()
        self.gated_kernel = gated_kernel
        self.counts: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.counts = {GATED_RMS_NORM: _apply(_GatedNormRule, model) if self.gated_kernel else 0}
        self.counts[SIMPLIFIED_LAYER_NORM] = _apply(_RmsNormRule, model)
        self.counts[L2_NORM] = _apply(_L2NormRule, model)
        if self.counts[GATED_RMS_NORM]:
            model.opset_imports.setdefault(MS_DOMAIN, 1)
        return ir.passes.PassResult(model, modified=any(self.counts.values()))


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


class FoldResidualAdds(ir.passes.InPlacePass):
    """`SimplifiedLayerNormalization(a + b)` -> SkipSimplifiedLayerNormalization(a, b).

    The sum stays available (the kernel's 4th output) for the residual stream's next Add.
    Hand-written, not a rewriter rule: the fused node must keep its 2nd and 3rd outputs (the
    training-only statistics) unnamed, so onnxruntime skips them, and the rewriter names every
    value it leaves unnamed (its closing NameFixPass); the match also has two outputs (the norm
    and the sum), where onnxscript 0.7.2 documents the insertion point as unhandled. Operand
    order needs no second try here: the kernel adds a and b either way.
    `count` holds how many norms the last call folded.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        self.count = 0
        for norm in list(graph):
            if norm.op_type != SIMPLIFIED_LAYER_NORM or norm.domain != "" or norm.graph is not graph:
                continue
            operands = _skip_operands(norm)
            if operands is None:
                continue
            adder, first, second = operands
            fused = ir.node(
                SKIP_SIMPLIFIED_LAYER_NORM,
                [first, second, norm.inputs[1]],
                {"epsilon": norm.attributes["epsilon"].as_float()},
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
            self.count += 1
        if self.count:
            model.opset_imports.setdefault(MS_DOMAIN, 1)
        return ir.passes.PassResult(model, modified=self.count > 0)
