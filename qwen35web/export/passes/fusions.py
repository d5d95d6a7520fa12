"""All onnxruntime kernel fusions of the `--ops fused` graph, as one onnx-ir pass manager.

Runs after `choose_ops(model, "fused")`. The portable graph never goes through here: it stays
standard ONNX plus the project's own functions.
"""

from __future__ import annotations

import logging

import onnx_ir as ir

from qwen35web.export.passes.fuse_attention import GROUP_QUERY_ATTENTION, FuseAttention
from qwen35web.export.passes.fuse_norms import SKIP_SIMPLIFIED_LAYER_NORM, FoldResidualAdds, FuseRmsNorms
from qwen35web.export.passes.fuse_rotary import ROTARY_EMBEDDING, FuseRotary, RotaryCacheBuilder

log = logging.getLogger(__name__)


class RemoveDeadNodes(ir.passes.InPlacePass):
    """Drop nodes and initializers nothing reads (the replaced subgraphs); `count`: nodes removed.

    (onnx-ir's own RemoveUnusedNodesPass logs a stack trace per contrib node whose schema it
    cannot look up.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        initializers = len(model.graph.initializers)
        self.count = remove_dead_nodes(model.graph)
        modified = self.count > 0 or len(model.graph.initializers) != initializers
        return ir.passes.PassResult(model, modified=modified)


def remove_dead_nodes(graph: ir.Graph) -> int:
    """Drop nodes and initializers nothing reads; returns how many nodes went."""
    outputs = set(graph.outputs)
    removed = 0
    for node in reversed(list(graph)):
        if not any(value in outputs or value.uses() for value in node.outputs):
            graph.remove(node, safe=True)
            removed += 1
    for name, value in list(graph.initializers.items()):
        if not value.uses() and value not in outputs and not value.is_graph_input():
            del graph.initializers[name]
    return removed


class Fusions(ir.passes.InPlacePass):
    """Fuse norms, rotary and attention into onnxruntime contrib kernels, in place.

    The defaults suit a bundle that runs on every execution provider (native CPU, wasm, WebGPU):
    GQA serves decode steps only (see attention_fallback) and the gated output norm keeps its silu
    gate outside the norm kernel (see fuse_norms). A test that wants another configuration passes
    its own `attention` or `norms` pass.
    """

    def __init__(self, attention: FuseAttention | None = None, norms: FuseRmsNorms | None = None) -> None:
        super().__init__()
        rotary = attention.rotary if attention is not None else RotaryCacheBuilder()
        self.attention = attention or FuseAttention(rotary)
        self.rotary = FuseRotary(rotary)  # one cache builder: caches made for GQA are reused
        self.norms = norms or FuseRmsNorms()
        self.residuals = FoldResidualAdds()
        # The order, and why:
        # 1. attention before the stand-alone rotary: the rotary of q and k then goes into GQA's
        #    packed [B, T, H*hd] inputs rather than onto the traced [B, H, T, hd] tensors;
        # 2. the norms after both (independent of them), and before the residual fold, which
        #    turns `SimplifiedLayerNormalization(a + b)` made by the norm rules into the skip kernel;
        #    the fold also comes after the last rewriter run, whose name fixing would name the
        #    skip kernel's deliberately absent outputs;
        # 3. a final sweep removes what nothing reads.
        self.manager = ir.passes.PassManager(
            [self.attention, self.rotary, self.norms, self.residuals, RemoveDeadNodes()]
        )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        nodes_before = len(model.graph)
        result = self.manager(model)
        counts = {GROUP_QUERY_ATTENTION: self.attention.count, ROTARY_EMBEDDING: self.rotary.count}
        counts.update(self.norms.counts)
        counts[SKIP_SIMPLIFIED_LAYER_NORM] = self.residuals.count
        summary = ", ".join(f"{count} {name}" for name, count in counts.items())
        log.info("fused: %s (%d -> %d nodes)", summary, nodes_before, len(model.graph))
        return ir.passes.PassResult(result.model, modified=result.modified)
