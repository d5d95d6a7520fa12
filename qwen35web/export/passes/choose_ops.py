"""Pass: choose how the project's custom ops run.

`portable` keeps the custom nodes and attaches their ONNX function bodies to the model, so any
runtime that inlines model-local functions runs them. `fused` replaces each custom node with
onnxruntime's contrib kernels (com.microsoft::LinearAttention, CausalConvWithState). `webgpu` is
`fused` with the delta rule on com.microsoft::GatedDeltaNet instead, a kernel only onnxruntime-web's
WebGPU backend has (export/ops/gated_delta_net.py); its graph runs nowhere else.
"""

from __future__ import annotations

import logging

import onnx_ir as ir

from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, MS_DOMAIN
from qwen35web.export.ops.registry import CUSTOM_OPS

log = logging.getLogger(__name__)

# The choices that lower to onnxruntime's contrib kernels (and then run the fusions).
FUSED_OPS = ("fused", "webgpu")


def _custom_nodes(graph: ir.Graph) -> list[ir.Node]:
    return [node for node in graph if node.domain == DOMAIN and node.op_type in CUSTOM_OPS]


class AttachPortableFunctions(ir.passes.InPlacePass):
    """Attach the ONNX function body of every custom op the graph uses (`--ops portable`)."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        by_type: dict[str, list[ir.Node]] = {}
        for node in _custom_nodes(model.graph):
            by_type.setdefault(node.op_type, []).append(node)
        for op_type in sorted(by_type):
            proto = CUSTOM_OPS[op_type].function_proto_for(by_type[op_type])
            function = ir.serde.deserialize_function(proto)
            model.functions[function.identifier()] = function
            for domain, version in function.opset_imports.items():
                model.opset_imports.setdefault(domain, version)
        model.opset_imports[DOMAIN] = DOMAIN_VERSION
        log.info("attached portable bodies for %s", ", ".join(sorted(by_type)) or "no ops")
        return ir.passes.PassResult(model, modified=bool(by_type))


class LowerToFusedKernels(ir.passes.InPlacePass):
    """Replace every custom node by onnxruntime contrib kernels (`--ops fused` or `webgpu`)."""

    def __init__(self, ops: str = "fused") -> None:
        super().__init__()
        self.ops = ops

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        nodes = _custom_nodes(model.graph)
        for node in nodes:
            new_nodes, new_outputs = CUSTOM_OPS[node.op_type].lowering(self.ops)(node)
            ir.convenience.replace_nodes_and_values(
                model.graph, node, [node], new_nodes, list(node.outputs), new_outputs
            )
        model.opset_imports.pop(DOMAIN, None)
        model.opset_imports[MS_DOMAIN] = 1
        log.info("lowered %d custom nodes to %s kernels (%s)", len(nodes), MS_DOMAIN, self.ops)
        return ir.passes.PassResult(model, modified=bool(nodes))


def ops_pass(ops: str) -> ir.passes.InPlacePass:
    """The pass that makes the graph's custom ops run as `ops` ("portable", "fused", "webgpu") asks."""
    if ops == "portable":
        return AttachPortableFunctions()
    if ops in FUSED_OPS:
        return LowerToFusedKernels(ops)
    raise ValueError(f"unknown ops choice {ops!r}")


def choose_ops(model: ir.Model, ops: str) -> ir.Model:
    """Run `ops_pass(ops)` on the model, in place; returns it."""
    return ops_pass(ops)(model).model
