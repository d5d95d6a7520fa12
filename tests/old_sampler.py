"""sampler.onnx as bundles exported before presence/frequency penalties hold it (no bias inputs).

(No `from __future__ import annotations` here: onnxscript reads the annotations as types.)
"""

import onnx
from onnxscript import FLOAT, INT64, script
from onnxscript import opset18 as op


@script()
def _sampler(logits: FLOAT, penalty_ids: INT64, penalty: FLOAT, temperature: FLOAT, k: INT64):
    last = op.Squeeze(
        op.Slice(
            logits, op.Constant(value_ints=[-1]), op.Constant(value_ints=[2**62]), op.Constant(value_ints=[1])
        ),
        op.Constant(value_ints=[1]),
    )
    seen = op.GatherElements(last, penalty_ids, axis=1)
    zero = op.CastLike(op.Constant(value_float=0.0), seen)
    penalised = op.Where(op.Greater(seen, zero), op.Div(seen, penalty), op.Mul(seen, penalty))
    scaled = op.Div(op.ScatterElements(last, penalty_ids, penalised, axis=1), temperature)
    top_logits, top_ids = op.TopK(scaled, k, axis=-1, largest=1, sorted=1)
    peak = op.ReduceMax(scaled, op.Constant(value_ints=[1]), keepdims=1)
    log_normalizer = op.Add(
        peak, op.Log(op.ReduceSum(op.Exp(op.Sub(scaled, peak)), op.Constant(value_ints=[1]), keepdims=1))
    )
    return top_logits, top_ids, log_normalizer


_SHAPES = {
    "logits": ["batch_size", "sequence_length", "vocab"],
    "penalty_ids": ["batch_size", "num_penalised"],
    "penalty": [1],
    "temperature": [1],
    "k": [1],
    "top_logits": ["batch_size", "k"],
    "top_ids": ["batch_size", "k"],
    "log_normalizer": ["batch_size", 1],
}
_OUTPUT_TYPES = {"top_logits": onnx.TensorProto.FLOAT, "top_ids": onnx.TensorProto.INT64}


def old_sampler_model() -> onnx.ModelProto:
    model = _sampler.to_model_proto()
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.elem_type = _OUTPUT_TYPES.get(
            value.name, value.type.tensor_type.elem_type or 1
        )
        dims = value.type.tensor_type.shape
        dims.ClearField("dim")
        for dim in _SHAPES[value.name]:
            entry = dims.dim.add()
            if isinstance(dim, int):
                entry.dim_value = dim
            else:
                entry.dim_param = dim
    return model
