"""All onnxruntime kernel fusions of the `--ops fused` graph, in one call.

Runs after `choose_ops(model, "fused")`. The portable graph never goes through here: it stays
standard ONNX plus the project's own functions.

Order matters only in one place: attention is fused before the stand-alone rotary pass, so the
rotary of q and k goes into GQA's packed [B, T, H*hd] inputs rather than the traced [B, H, T, hd]
tensors. The norm passes are independent of both. A final sweep removes what nothing reads.
"""

from __future__ import annotations

import logging

import onnx_ir as ir

from qwen35web.export.passes.fuse_attention import GROUP_QUERY_ATTENTION, fuse_attention
from qwen35web.export.passes.fuse_norms import SKIP_SIMPLIFIED_LAYER_NORM, fold_residual_adds, fuse_rms_norms
from qwen35web.export.passes.fuse_rotary import ROTARY_EMBEDDING, RotaryCacheBuilder, fuse_rotary

log = logging.getLogger(__name__)


def remove_dead_nodes(graph: ir.Graph) -> int:
    """Drop nodes and initializers nothing reads (the replaced subgraphs); returns the node count.

    (onnx-ir's own sweep logs a stack trace per contrib node whose schema it cannot look up.)
    """
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


def apply_fusions(
    model: ir.Model, *, gqa_decode_only: bool = True, gated_norm_kernel: bool = False
) -> ir.Model:
    """Fuse norms, rotary and attention into onnxruntime contrib kernels, in place; returns the model.

    The defaults suit a bundle that runs on every execution provider (native CPU, wasm, WebGPU):
    GQA serves decode steps only (`gqa_decode_only`, see attention_fallback) and the gated output
    norm keeps its silu gate outside the norm kernel (`gated_norm_kernel`, see fuse_norms).
    """
    nodes_before = len(model.graph)
    rotary = RotaryCacheBuilder(model.graph)
    counts = {GROUP_QUERY_ATTENTION: fuse_attention(model, rotary, gqa_decode_only)}
    counts[ROTARY_EMBEDDING] = fuse_rotary(model, rotary)
    counts.update(fuse_rms_norms(model, gated_norm_kernel))
    counts[SKIP_SIMPLIFIED_LAYER_NORM] = fold_residual_adds(model)
    remove_dead_nodes(model.graph)
    summary = ", ".join(f"{count} {name}" for name, count in counts.items())
    log.info("fused: %s (%d -> %d nodes)", summary, nodes_before, len(model.graph))
    return model
