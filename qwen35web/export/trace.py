"""Trace the graph-shaped decoder into ONNX with torch.onnx (dynamo), custom ops kept as single nodes."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import onnx_ir as ir
import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.export import Dim

from qwen35web.export.decoder import Qwen35Decoder
from qwen35web.export.ops.domain import ONNX_OPSET
from qwen35web.export.ops.registry import translation_table
from qwen35web.runtime.bundle_format import ModelFacts, graph_metadata
from qwen35web.runtime.graph_io import (
    BATCH,
    IMAGE_TOKENS,
    MROPE_ROWS,
    PAST,
    SEQUENCE,
    TensorSpec,
    graph_inputs,
    graph_outputs,
    past_states,
)

log = logging.getLogger(__name__)

# Trace with sizes of at least 2 so that torch.export keeps every axis symbolic (0 and 1 specialise).
_TRACE_BATCH, _TRACE_SEQ, _TRACE_PAST = 2, 3, 2


def activation_dtype_name(dtype: torch.dtype) -> str:
    """torch.float16 -> "float16": the contract's name of the dtype the decoder is traced in."""
    return str(dtype).removeprefix("torch.")


def example_inputs(
    spec: ModelFacts, dtype: torch.dtype, with_images: bool = False
) -> tuple[torch.Tensor, ...]:
    batch, seq, past = _TRACE_BATCH, _TRACE_SEQ, _TRACE_PAST
    states = [
        torch.zeros(state.dims(batch, past), dtype=getattr(torch, state.dtype))
        for state in past_states(spec, activation_dtype_name(dtype))
    ]
    ids = torch.zeros((batch, seq), dtype=torch.long)
    mask = torch.ones((batch, past + seq), dtype=torch.long)
    # Distinct MRoPE rows, so nothing in the trace can assume they are equal.
    text = torch.arange(past, past + seq)
    positions = (
        torch.stack([text, text + 1, text + 2]).unsqueeze(1).expand(MROPE_ROWS, batch, seq).contiguous()
    )
    images = (torch.zeros((2, spec.hidden_size), dtype=torch.float32),) if with_images else ()
    return (ids, mask, positions, *images, *states)


def dynamic_shapes(spec: ModelFacts, with_images: bool = False) -> tuple[object, ...]:
    batch, seq = Dim(BATCH), Dim(SEQUENCE)
    # total = past + seq is a relation torch.export cannot state between two free dims; AUTO lets
    # it infer the past axis from the attention mask's.
    axes = {BATCH: batch, PAST: Dim.AUTO}
    states = tuple(
        {axis: axes[d] for axis, d in enumerate(state.shape) if isinstance(d, str)}
        for state in past_states(spec, "float32")
    )
    # forward(ids, mask, positions, *rest): the varargs are one element of the structure.
    images = ({0: Dim(IMAGE_TOKENS)},) if with_images else ()
    return ({0: batch, 1: seq}, {0: batch, 1: Dim.AUTO}, {1: batch, 2: seq}, (*images, *states))


def _declare(value: ir.Value, spec: TensorSpec) -> None:
    """Give a graph input/output the contract's dims (the tracer invents its own symbol names)."""
    shape = value.shape
    dtype = np.dtype(value.dtype.numpy()).name if value.dtype is not None else None
    assert shape is not None and len(shape) == len(spec.shape), (
        f"{value.name}: rank differs from the contract"
    )
    assert (value.name, dtype) == (spec.name, spec.dtype), (
        f"{value.name} {dtype} is not the contract's {spec}"
    )
    for traced, declared in zip(shape, spec.shape, strict=True):
        assert isinstance(traced, int) == isinstance(declared, int), f"{value.name}: {shape} vs {spec.shape}"
        assert not isinstance(declared, int) or traced == declared, f"{value.name}: {shape} vs {spec.shape}"
    value.shape = ir.Shape(list(spec.shape))


def apply_io_contract(
    model: ir.Model, spec: ModelFacts, activation_dtype: str, last_position_only: bool, with_images: bool
) -> None:
    """Check the traced I/O against graph_io's contract, name its dims, and record the model facts."""
    graph = model.graph
    inputs, outputs = (
        graph_inputs(spec, activation_dtype, with_images),
        graph_outputs(spec, activation_dtype, last_position_only),
    )
    assert len(graph.inputs) == len(inputs) and len(graph.outputs) == len(outputs), "I/O count differs"
    for value, declared in zip([*graph.inputs, *graph.outputs], [*inputs, *outputs], strict=True):
        _declare(value, declared)
    model.metadata_props.update(graph_metadata(spec, activation_dtype))


# Weightless traces by what they depend on (see trace_to_onnx): a process that exports one model shape
# several times (formats, logits, a bench's recipes, a test session) traces it once.
_WEIGHTLESS_TRACES: dict[tuple[object, ...], ir.Model] = {}


def _is_weightless(decoder: Qwen35Decoder) -> bool:
    return all(isinstance(p, FakeTensor) for p in decoder.parameters())


def trace_to_onnx(
    decoder: Qwen35Decoder, dtype: torch.dtype = torch.float32, optimize: bool = True
) -> ir.Model:
    """`optimize=False` skips torch.onnx's constant folding (a weightless decoder: see lazy_weights).

    A weightless decoder's graph depends only on the model facts, the dtype and the decoder's two
    switches, not on any weight: it is traced once per process, and every call, the first one too,
    gets a clone (its own nodes and values; the fake initializers, which passes replace rather than
    change, are shared). So the bytes written never depend on what the process traced before (a
    clone names the values passes add from its own counter)."""
    if optimize or not _is_weightless(decoder):
        return _trace(decoder, dtype, optimize)
    key = (repr(decoder.spec), str(dtype), decoder.last_position_only, decoder.image_token_id)
    if key not in _WEIGHTLESS_TRACES:
        _WEIGHTLESS_TRACES[key] = _trace(decoder, dtype, optimize)
    else:
        log.info("reusing this process's trace of the same model shape")
    return _WEIGHTLESS_TRACES[key].clone()


def _trace(decoder: Qwen35Decoder, dtype: torch.dtype, optimize: bool) -> ir.Model:
    spec = decoder.spec
    with_images = decoder.image_token_id is not None
    args = example_inputs(spec, dtype, with_images)
    activations, last_only = activation_dtype_name(dtype), decoder.last_position_only
    log.info("tracing the decoder with torch.onnx (dynamo)")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            decoder,
            args,
            dynamo=True,
            input_names=[i.name for i in graph_inputs(spec, activations, with_images)],
            output_names=[o.name for o in graph_outputs(spec, activations, last_only)],
            dynamic_shapes=dynamic_shapes(spec, with_images),
            custom_translation_table=translation_table(),
            # The custom ops' function bodies import this opset; the model must match it.
            opset_version=ONNX_OPSET,
            optimize=optimize,
            verbose=False,
        )
    assert program is not None
    model = program.model
    apply_io_contract(model, spec, activations, last_only, with_images)
    return model
