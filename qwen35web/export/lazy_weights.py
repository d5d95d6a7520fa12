"""Streamed export: trace a weightless decoder, then give the graph weights read on demand.

The decoder is built with FakeTensor parameters (shapes and dtypes, no storage), traced by
torch.onnx as usual, and each of the graph's initializers becomes an `ir.LazyTensor` that reads
its tensor from the checkpoint when a pass or the writer asks for it, and drops it afterwards. So
an export never holds more than one weight (and what a pass makes of it) in memory: the 9B shape
exports at q4 in a few GB where tracing real weights would need 36 GB of fp32 first.

torch.onnx's own constant folding runs inside `export()` and would read the fake tensors, so the
trace skips it and `optimize_with_weights` runs the same onnxscript optimizer once the lazy weights
are in place. That optimizer folds only small constants, with one exception: it always folds a
`Transpose` of a weight that nothing else reads, which is how every `nn.Linear` weight [N, K]
reaches its MatMul as [K, N]; done eagerly that would hold every weight in memory at once, so
`transpose_lazily` turns those Transposes into lazy transposed reads first.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir
import onnxscript.optimizer
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.decoder import Qwen35Decoder, checkpoint_name, set_rotary_buffers
from qwen35web.runtime.bundle_format import ModelFacts

log = logging.getLogger(__name__)


def weightless_decoder(spec: ModelFacts, checkpoint: Checkpoint, dtype: torch.dtype) -> Qwen35Decoder:
    """The decoder with fake parameters of `dtype`, after checking every tensor's shape in the checkpoint."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # a fake module cannot be .to()'d: make its parameters in `dtype`
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            decoder = Qwen35Decoder(spec)
    finally:
        torch.set_default_dtype(default)
    expected = {checkpoint_name(spec, n): tuple(p.shape) for n, p in decoder.named_parameters()}
    checkpoint.check_expected(expected)
    set_rotary_buffers(decoder)  # real buffers: computed, not read
    return decoder.eval()


def _reader(checkpoint: Checkpoint, name: str, dtype: torch.dtype):
    def read() -> ir.TensorProtocol:
        return ir.tensor(checkpoint.load(name, dtype).numpy())

    return read


def attach_checkpoint_weights(model: ir.Model, spec: ModelFacts, checkpoint: Checkpoint) -> int:
    """Replace every fake initializer by a lazy read of its checkpoint tensor; returns how many."""
    count = 0
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if not isinstance(getattr(tensor, "raw", None), FakeTensor):
            continue
        assert tensor is not None and value.name is not None
        fake: FakeTensor = tensor.raw  # type: ignore[attr-defined]
        source = checkpoint_name(spec, value.name)
        value.const_value = ir.LazyTensor(
            _reader(checkpoint, source, fake.dtype),
            dtype=tensor.dtype,
            shape=ir.Shape(tuple(fake.shape)),
            name=value.name,
        )
        count += 1
    return count


def _transposed(source: ir.LazyTensor, perm: list[int]):
    def read() -> ir.TensorProtocol:
        return ir.tensor(np.ascontiguousarray(source.numpy().transpose(perm)))

    return read


def transpose_lazily(graph: ir.Graph) -> int:
    """`Transpose(W)` of a lazy weight read by nothing else -> a lazy read of W transposed."""
    count = 0
    for node in list(graph):
        weight = node.inputs[0] if node.op_type == "Transpose" and node.domain in ("", "ai.onnx") else None
        source = None if weight is None else weight.const_value
        if weight is None or not isinstance(source, ir.LazyTensor) or len(weight.uses()) != 1:
            continue
        perm = list(node.attributes.get_ints("perm", range(len(source.shape) - 1, -1, -1)))
        shape = ir.Shape([source.shape[axis] for axis in perm])
        name = f"{weight.name}_transposed"
        lazy = ir.LazyTensor(_transposed(source, perm), dtype=source.dtype, shape=shape, name=name)
        value = ir.Value(name=name, shape=shape, type=ir.TensorType(source.dtype), const_value=lazy)
        graph.register_initializer(value)
        node.outputs[0].replace_all_uses_with(value)
        graph.remove(node, safe=True)
        del graph.initializers[weight.name]  # type: ignore[arg-type]
        count += 1
    return count


def optimize_with_weights(model: ir.Model, spec: ModelFacts, checkpoint: Checkpoint) -> ir.Model:
    """Attach the lazy weights, then fold constants as torch.onnx's `optimize=True` would have."""
    count = attach_checkpoint_weights(model, spec, checkpoint)
    transposed = transpose_lazily(model.graph)
    log.info(
        "%d weights will be read from %s as they are needed (%d of them transposed)",
        count,
        checkpoint.model_dir,
        transposed,
    )
    onnxscript.optimizer.optimize_ir(model)
    return model
