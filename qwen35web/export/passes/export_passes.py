"""Every graph pass of one export, in order, as one onnx-ir pass manager.

The order, and why:
1. the ops choice first: the fusions match onnxruntime's kernels (`--ops fused|webgpu`), and a portable
   graph keeps the project's custom nodes with their bodies attached;
2. the fusions (fused graphs only) before quantization: quantization rewrites the MatMuls the
   fusions leave alone, and the fusions match float weights (norm scales, rotary angles);
3. the weight format's quantization;
4. splitting big initializers last, on the weights as they will be stored (quantization shrinks
   them, so a table that needed blocks in fp32 may not after it).
"""

from __future__ import annotations

import logging

import onnx_ir as ir

from qwen35web.export import formats
from qwen35web.export.passes.choose_ops import FUSED_OPS, ops_pass
from qwen35web.export.passes.fusions import Fusions
from qwen35web.export.passes.split_initializers import SplitLargeInitializers

log = logging.getLogger(__name__)


def _fingerprint(model: ir.Model) -> tuple[tuple[str, ...], frozenset[str]]:
    """What quantization changes: the node kinds in order and the initializer names."""
    return tuple(node.op_type for node in model.graph), frozenset(model.graph.initializers)


class QuantizeWeights(ir.passes.InPlacePass):
    """A weight format's quantization (formats.py) with its recipe, as a pass."""

    def __init__(self, choice: formats.Choice) -> None:
        super().__init__()
        assert choice.format.quantize is not None, "only a quantized format has a quantization pass"
        self.choice = choice

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        choice = self.choice
        assert choice.format.quantize is not None
        log.info("%s recipe for a %s model: %s", choice.format.name, choice.size.name, choice.recipe.label())
        before = _fingerprint(model)
        model = choice.format.quantize(model, choice.recipe)
        return ir.passes.PassResult(model, modified=_fingerprint(model) != before)


def export_passes(ops: str, choice: formats.Choice, max_data_file_bytes: int) -> ir.passes.PassManager:
    """The passes that turn the traced, weight-optimized graph into the one a bundle stores."""
    passes: list[ir.passes.PassBase] = [ops_pass(ops)]
    if ops in FUSED_OPS:
        passes.append(Fusions())
    if choice.format.quantize is not None:
        passes.append(QuantizeWeights(choice))
    passes.append(SplitLargeInitializers(max_data_file_bytes))  # no weight file over the limit
    return ir.passes.PassManager(passes)
