"""The bundle's sampler graph: reduce the last position's logits to k candidates on the device.

Per-token Python work in the runtime must not grow with the vocabulary (248k entries), so the
penalties, the temperature, the top-k selection and the softmax normaliser run in onnxruntime; the
runtime reads back k logits, k ids and one number. With WebGPU the logits never leave the GPU.

Both penalties act on the logits before the temperature and the top-k, so the candidates and the
log-normaliser are those of the penalised distribution over the whole vocabulary (exact, not a
renormalisation over candidates). First the repetition penalty (CTRL, multiplicative) over
`penalty_ids`, then the additive biases: `logit[bias_ids[i]] -= bias[i]` (the runtime gives the
presence/frequency penalties of the tokens generated so far as biases; runtime/penalties.py).

  inputs : logits [batch_size, sequence_length, vocab] f32, penalty_ids [batch_size, n] i64 (n >= 1),
           penalty [1] f32, bias_ids [batch_size, m] i64 (m >= 1, distinct), bias [batch_size, m] f32,
           temperature [1] f32, k [1] i64
  outputs: top_logits [batch_size, k] f32 (scaled, descending), top_ids [batch_size, k] i64,
           log_normalizer [batch_size, 1] f32 (logsumexp of all scaled logits)
"""

from __future__ import annotations

import onnx
from onnxscript import FLOAT, INT64, script
from onnxscript import opset18 as op

from qwen35web.runtime import graph_io as io


@script()
def sampler(
    logits: FLOAT,
    penalty_ids: INT64,
    penalty: FLOAT,
    bias_ids: INT64,
    bias: FLOAT,
    temperature: FLOAT,
    k: INT64,
):
    minus_one = op.Constant(value_ints=[-1])
    last = op.Squeeze(
        op.Slice(logits, minus_one, op.Constant(value_ints=[2**62]), op.Constant(value_ints=[1])),
        op.Constant(value_ints=[1]),
    )  # [B, V]
    # Repetition penalty (CTRL): shrink positive logits, grow negative ones, for ids already seen.
    seen = op.GatherElements(last, penalty_ids, axis=1)  # [B, n]
    zero = op.CastLike(op.Constant(value_float=0.0), seen)
    penalised = op.Where(op.Greater(seen, zero), op.Div(seen, penalty), op.Mul(seen, penalty))
    repeated = op.ScatterElements(last, penalty_ids, penalised, axis=1)  # [B, V]
    # Additive biases (presence/frequency penalties); the ids are distinct, so no scatter reduction.
    biased = op.Sub(op.GatherElements(repeated, bias_ids, axis=1), bias)  # [B, m]
    scaled = op.Div(op.ScatterElements(repeated, bias_ids, biased, axis=1), temperature)  # [B, V]
    top_logits, top_ids = op.TopK(scaled, k, axis=-1, largest=1, sorted=1)
    peak = op.ReduceMax(scaled, op.Constant(value_ints=[1]), keepdims=1)  # [B, 1]
    log_normalizer = op.Add(
        peak, op.Log(op.ReduceSum(op.Exp(op.Sub(scaled, peak)), op.Constant(value_ints=[1]), keepdims=1))
    )
    return top_logits, top_ids, log_normalizer


def sampler_model() -> onnx.ModelProto:
    model = sampler.to_model_proto()
    # The script's parameter names are the contract's; check rather than trust.
    assert tuple(i.name for i in model.graph.input) == io.SAMPLER_INPUTS
    assert tuple(o.name for o in model.graph.output) == io.SAMPLER_OUTPUTS
    shapes = {
        io.SAMPLER_LOGITS: [io.BATCH, io.SEQUENCE, "vocab"],
        io.SAMPLER_PENALTY_IDS: [io.BATCH, "num_penalised"],
        io.SAMPLER_PENALTY: [1],
        io.SAMPLER_BIAS_IDS: [io.BATCH, "num_biased"],
        io.SAMPLER_BIAS: [io.BATCH, "num_biased"],
        io.SAMPLER_TEMPERATURE: [1],
        io.SAMPLER_K: [1],
        io.SAMPLER_TOP_LOGITS: [io.BATCH, "k"],
        io.SAMPLER_TOP_IDS: [io.BATCH, "k"],
        io.SAMPLER_LOG_NORMALIZER: [io.BATCH, 1],
    }
    elem_types = {
        io.SAMPLER_TOP_LOGITS: onnx.TensorProto.FLOAT,
        io.SAMPLER_TOP_IDS: onnx.TensorProto.INT64,
        io.SAMPLER_LOG_NORMALIZER: onnx.TensorProto.FLOAT,
    }
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in elem_types:
            value.type.tensor_type.elem_type = elem_types[value.name]
        dims = value.type.tensor_type.shape
        dims.ClearField("dim")
        for dim in shapes[value.name]:
            entry = dims.dim.add()
            if isinstance(dim, int):
                entry.dim_value = dim
            else:
                entry.dim_param = dim
    onnx.checker.check_model(model)
    return model
