"""Pass: split any weight bigger than the external-data file limit into row blocks joined by a Concat.

The bundle's weight files are at most `max_data_file_bytes` (1 GiB) each, so that a browser can
fetch, hash and cache each one as an ordinary ArrayBuffer. onnx_ir shards whole tensors, and an fp32
embedding table alone exceeds 1 GiB from the 2B shape on (248320 x 2048 x 4 bytes = 2.03 GB): such a
tensor is stored as consecutive row blocks, and a `Concat(axis=0)` rebuilds it, which onnxruntime
folds into one constant when the session is created. Lazy weights stay lazy: each block reads the
source when it is written.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import onnx_ir as ir

log = logging.getLogger(__name__)


def _rows(source: ir.TensorProtocol, start: int, stop: int):
    def read() -> ir.TensorProtocol:
        return ir.tensor(np.ascontiguousarray(source.numpy()[start:stop]))

    return read


def _blocks(graph: ir.Graph, value: ir.Value, parts: int) -> list[ir.Value]:
    source = value.const_value
    assert source is not None and value.name is not None
    dims = [int(d) for d in source.shape.numpy()]  # a weight's shape is static
    rows = dims[0]
    step = math.ceil(rows / parts)
    blocks = []
    for index, start in enumerate(range(0, rows, step)):
        stop = min(rows, start + step)
        name = f"{value.name}.rows{index}"
        shape = ir.Shape([stop - start, *dims[1:]])
        lazy = ir.LazyTensor(_rows(source, start, stop), dtype=source.dtype, shape=shape, name=name)
        block = ir.Value(name=name, shape=shape, type=ir.TensorType(source.dtype), const_value=lazy)
        graph.register_initializer(block)
        blocks.append(block)
    return blocks


class SplitLargeInitializers(ir.passes.InPlacePass):
    """Rewrite every initializer over `max_bytes` as row blocks; `count`: how many were split."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.count = 0

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.count = 0
        for value in list(model.graph.initializers.values()):
            self.count += _split(model.graph, value, self.max_bytes)
        return ir.passes.PassResult(model, modified=self.count > 0)


def _split(graph: ir.Graph, value: ir.Value, max_bytes: int) -> bool:
    tensor = value.const_value
    if tensor is None or tensor.nbytes <= max_bytes or len(tensor.shape) < 1 or value.is_graph_input():
        return False
    parts = math.ceil(tensor.nbytes / max_bytes)
    rows = int(tensor.shape.numpy()[0])
    if rows < parts:
        log.warning("%s: %d rows cannot make %d blocks; left whole", value.name, rows, parts)
        return False
    blocks = _blocks(graph, value, parts)
    concat = ir.node("Concat", blocks, {"axis": 0}, name=f"{value.name}.concat")
    concat.outputs[0].shape, concat.outputs[0].type = value.shape, value.type
    graph.insert_before(next(iter(graph)), concat)
    value.replace_all_uses_with(concat.outputs[0])
    del graph.initializers[value.name]  # type: ignore[arg-type]
    concat.outputs[0].name = value.name  # readers keep seeing the weight under its own name
    log.info("%s (%.2f GB) stored as %d row blocks", value.name, tensor.nbytes / 1e9, len(blocks))
    return True
