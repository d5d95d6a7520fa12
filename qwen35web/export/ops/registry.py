"""The project's custom ops, each defined once in its own module; the passes and the tracer look here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import onnx
import onnx_ir as ir

from qwen35web.export.ops import causal_conv, gated_delta_net, gated_delta_rule

Lowering = Callable[[ir.Node], tuple[list[ir.Node], list[ir.Value]]]


@dataclass(frozen=True)
class CustomOp:
    op_type: str
    torch_op: Any  # torch OpOverload
    onnx_translation: Callable[..., Any]
    function_proto: Callable[[], onnx.FunctionProto]
    # The body to attach for a graph's nodes of this op (may specialise on their attributes).
    function_proto_for: Callable[[list[ir.Node]], onnx.FunctionProto]
    lower_to_ort: Lowering
    # Other lowerings by `--ops` choice (e.g. "webgpu"); a choice not named here lowers with lower_to_ort.
    lowerings: dict[str, Lowering] = field(default_factory=dict)

    def lowering(self, ops: str) -> Lowering:
        """The lowering `--ops ops` uses for this op."""
        return self.lowerings.get(ops, self.lower_to_ort)


def _from_module(module: ModuleType, lowerings: dict[str, Lowering] | None = None) -> CustomOp:
    return CustomOp(
        op_type=module.OP_TYPE,
        torch_op=module.TORCH_OP,
        onnx_translation=module.onnx_translation,
        function_proto=module.function_proto,
        function_proto_for=getattr(module, "function_proto_for", lambda nodes: module.function_proto()),
        lower_to_ort=module.lower_to_ort,
        lowerings=lowerings or {},
    )


CUSTOM_OPS: dict[str, CustomOp] = {
    op.op_type: op
    for op in (
        # `--ops webgpu`: onnxruntime-web's WebGPU GatedDeltaNet kernel (no CPU kernel exists).
        _from_module(gated_delta_rule, {"webgpu": gated_delta_net.lower_to_gated_delta_net}),
        _from_module(causal_conv),
    )
}


def translation_table() -> dict[Any, Callable[..., Any]]:
    """For torch.onnx.export(custom_translation_table=...)."""
    return {op.torch_op: op.onnx_translation for op in CUSTOM_OPS.values()}
