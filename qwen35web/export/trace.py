"""Trace the graph-shaped decoder into ONNX with torch.onnx (dynamo), custom ops kept as single nodes."""

from __future__ import annotations

import logging
import warnings

import onnx_ir as ir
import torch
from torch.export import Dim

from qwen35web.export.config import ModelSpec
from qwen35web.export.decoder import Qwen35Decoder, state_shapes
from qwen35web.export.ops.domain import ONNX_OPSET
from qwen35web.export.ops.registry import translation_table
from qwen35web.runtime.graph_io import input_names, output_names, state_io

log = logging.getLogger(__name__)

# Trace with sizes of at least 2 so that torch.export keeps every axis symbolic (0 and 1 specialise).
_TRACE_BATCH, _TRACE_SEQ, _TRACE_PAST = 2, 3, 2
BATCH, SEQUENCE, PAST, TOTAL = "batch", "sequence_length", "past_sequence_length", "total_sequence_length"


def example_inputs(spec: ModelSpec, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    batch, seq, past = _TRACE_BATCH, _TRACE_SEQ, _TRACE_PAST
    kinds = [s.kind for s in state_io(list(spec.layer_types))]
    states = [
        torch.zeros(shape, dtype=torch.float32 if kind == "recurrent" else dtype)
        for kind, shape in zip(kinds, state_shapes(spec, batch, past), strict=True)
    ]
    ids = torch.zeros((batch, seq), dtype=torch.long)
    mask = torch.ones((batch, past + seq), dtype=torch.long)
    positions = torch.arange(past, past + seq).expand(batch, seq).contiguous()
    return (ids, mask, positions, *states)


def dynamic_shapes(spec: ModelSpec) -> tuple[object, ...]:
    batch, seq = Dim(BATCH), Dim(SEQUENCE)
    # total = past + seq is a relation torch.export cannot state between two free dims; AUTO lets
    # it infer the past axis from the attention mask's.
    total = Dim.AUTO
    states: list[dict[int, Dim]] = []
    for state in state_io(list(spec.layer_types)):
        states.append({0: batch, 2: Dim.AUTO} if state.kind in ("key", "value") else {0: batch})
    # forward(ids, mask, positions, *past): the varargs are one element of the structure.
    return ({0: batch, 1: seq}, {0: batch, 1: total}, {0: batch, 1: seq}, tuple(states))


def rename_dynamic_dims(model: ir.Model, spec: ModelSpec) -> None:
    """Give the graph's symbolic I/O dims the contract's names (the tracer invents its own)."""
    graph = model.graph
    names: dict[str, str] = {}
    ids, mask = graph.inputs[0].shape, graph.inputs[1].shape
    assert ids is not None and mask is not None, "the tracer always records input shapes"
    names[str(ids[0])] = BATCH
    names[str(ids[1])] = SEQUENCE
    names[str(mask[1])] = TOTAL
    for value in graph.inputs:
        if value.name and value.name.endswith(".key") and value.shape is not None:
            names[str(value.shape[2])] = PAST
            break
    for value in [*graph.inputs, *graph.outputs]:
        if value.shape is None:
            continue
        dims = [names.get(str(d), d) if isinstance(d, ir.SymbolicDim) else d for d in value.shape]
        value.shape = ir.Shape(dims)


def trace_to_onnx(
    decoder: Qwen35Decoder, dtype: torch.dtype = torch.float32, optimize: bool = True
) -> ir.Model:
    """`optimize=False` skips torch.onnx's constant folding (a weightless decoder: see lazy_weights)."""
    spec = decoder.spec
    args = example_inputs(spec, dtype)
    log.info("tracing the decoder with torch.onnx (dynamo)")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            decoder,
            args,
            dynamo=True,
            input_names=input_names(list(spec.layer_types)),
            output_names=output_names(list(spec.layer_types)),
            dynamic_shapes=dynamic_shapes(spec),
            custom_translation_table=translation_table(),
            # The custom ops' function bodies import this opset; the model must match it.
            opset_version=ONNX_OPSET,
            optimize=optimize,
            verbose=False,
        )
    assert program is not None
    model = program.model
    rename_dynamic_dims(model, spec)
    return model
