"""Portable ONNX function body of ``GatedDeltaRule``, built from standard ONNX ops only.

The body is an ``If`` on ``T == 1``:

* decode (T = 1): one recurrent step, a handful of MatMul/Mul/Add, no loop;
* prefill (T > 1): the chunked (WY / UT-transform) form of the delta rule with chunk ``C``.
  T is padded to a multiple of C with exact no-op steps (beta = 0, g = 0, k = 0), the
  ``(I + L)^-1`` of every chunk's strictly-lower-triangular system comes from ONE ``Loop`` of
  C forward-substitution steps over all chunks at once, and a ``Scan`` over the chunks hands
  the state from one chunk to the next.

All math runs in float32 whatever the input dtype; the output is cast back like ``value``.
Names of values inside the body are generated; they only need to be unique within it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import onnx
from onnx import TensorProto, helper

from qwen35web.export.ops.domain import DOMAIN, ONNX_OPSET

OP_TYPE = "GatedDeltaRule"
CHUNK_SIZE = 64
SCALE_ATTRIBUTE = "scale"
INPUT_NAMES = ("query", "key", "value", "g", "beta", "initial_state")
OUTPUT_NAMES = ("output", "final_state")

_FLOAT = TensorProto.FLOAT


class _NodeWriter:
    """Appends NodeProtos to a list, naming every output uniquely within one function body.

    Writers for subgraphs (If branches, Loop and Scan bodies) share their parent's name
    counter, so a subgraph may read outer-scope values by name without any clash.
    """

    def __init__(self, counter: Iterator[int] | None = None) -> None:
        self._counter = counter if counter is not None else itertools.count()
        self.nodes: list[onnx.NodeProto] = []

    def subgraph_writer(self) -> _NodeWriter:
        return _NodeWriter(self._counter)

    def fresh_name(self, hint: str) -> str:
        return f"gdr_{hint}_{next(self._counter)}"

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        return self.op_multi(op_type, list(inputs), 1, **attributes)[0]

    def op_multi(self, op_type: str, inputs: list[str], num_outputs: int, **attributes: Any) -> list[str]:
        hint = op_type.lower()
        outputs = [self.fresh_name(hint) for _ in range(num_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attributes))
        return outputs

    def ints(self, *values: int) -> str:
        """A 1-D int64 constant."""
        return self.op("Constant", value_ints=list(values))

    def int_scalar(self, value: int) -> str:
        return self.op("Constant", value_int=value)

    def float_scalar(self, value: float) -> str:
        return self.op("Constant", value_float=value)

    def scale_from_attribute(self) -> str:
        """A float scalar read from the function's ``scale`` attribute."""
        reference = onnx.AttributeProto()
        reference.name = "value_float"
        reference.ref_attr_name = SCALE_ATTRIBUTE
        reference.type = onnx.AttributeProto.FLOAT
        output = self.fresh_name("scale")
        node = helper.make_node("Constant", [], [output])
        node.attribute.append(reference)
        self.nodes.append(node)
        return output

    def dims(self, tensor: str, start: int, end: int) -> str:
        """``Shape(tensor)[start:end]`` as a 1-D int64 tensor."""
        return self.op("Shape", tensor, start=start, end=end)

    def graph(
        self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[tuple[str, int]]
    ) -> onnx.GraphProto:
        """A subgraph of this writer's nodes; ``outputs`` are (name, rank) of float32 tensors."""
        output_infos = [_float_info(output, rank) for output, rank in outputs]
        return helper.make_graph(self.nodes, name, inputs, output_infos)


def _float_info(name: str, rank: int) -> onnx.ValueInfoProto:
    # onnxruntime's Scan wants at least the rank of every subgraph output; dims stay unknown.
    return helper.make_tensor_value_info(name, _FLOAT, [None] * rank)


def _repeat_heads(w: _NodeWriter, x: str, ratio: str) -> str:
    """[B, T, Hk, D] -> [B, T, Hk*ratio, D], each head repeated ``ratio`` times consecutively."""
    expanded_shape = w.op("Concat", w.dims(x, 0, 3), ratio, w.dims(x, 3, 4), axis=0)
    grouped = w.op("Expand", w.op("Unsqueeze", x, w.ints(3)), expanded_shape)  # [B, T, Hk, r, D]
    merged_shape = w.op("Concat", w.dims(x, 0, 2), w.ints(-1), w.dims(x, 3, 4), axis=0)
    return w.op("Reshape", grouped, merged_shape)


def _recurrent_step_branch(
    w: _NodeWriter, q: str, k: str, v: str, g: str, beta: str, state: str
) -> onnx.GraphProto:
    """One token of the recurrence; inputs head-major: q, k [B, H, 1, Dk], v [B, H, 1, Dv], g, beta [B, H, 1].

    Returns the then-branch graph with outputs (out [B, H, 1, Dv], new state [B, H, Dk, Dv]).
    """
    decay = w.op("Unsqueeze", w.op("Exp", g), w.ints(3))  # [B, H, 1, 1]
    decayed = w.op("Mul", state, decay)  # [B, H, Dk, Dv]
    predicted = w.op("MatMul", k, decayed)  # [B, H, 1, Dv] = S^T k
    delta = w.op("Mul", w.op("Sub", v, predicted), w.op("Unsqueeze", beta, w.ints(3)))
    k_column = w.op("Transpose", k, perm=[0, 1, 3, 2])  # [B, H, Dk, 1]
    new_state = w.op("Add", decayed, w.op("MatMul", k_column, delta))
    out = w.op("MatMul", q, new_state)  # [B, H, 1, Dv]
    return w.graph("gdr_recurrent_step", [], [(out, 4), (new_state, 4)])


def _pad_to_chunks(w: _NodeWriter, x: str, pad: str, has_feature_axis: bool) -> str:
    """Pad the time axis (2) of [B, H, T, D] or [B, H, T] with zeros and split it into [N, C]."""
    if has_feature_axis:
        pads = w.op("Concat", w.ints(0, 0, 0, 0, 0, 0), pad, w.ints(0), axis=0)
        chunk_shape = w.op("Concat", w.ints(0, 0, -1, CHUNK_SIZE), w.dims(x, 3, 4), axis=0)
    else:
        pads = w.op("Concat", w.ints(0, 0, 0, 0, 0), pad, axis=0)
        chunk_shape = w.ints(0, 0, -1, CHUNK_SIZE)
    return w.op("Reshape", w.op("Pad", x, pads), chunk_shape)


def _forward_substitution_inverse(w: _NodeWriter, system: str, identity: str) -> str:
    """(I + L)^-1 with L the strictly-lower triangle of ``system`` [B, H, N, C, C], every chunk at once.

    Row i of X = (I + L)^-1 is ``e_i - L[i, :i] @ X[:i]``, so one Loop step per row finishes it;
    only entries below the diagonal are ever read.
    The carried X holds the finished rows [B, H, N, i, C] and grows by one row per step: a full
    [C, C] rewrite per step instead made the loop memory-bound (about 5x slower at H=16, N=2).
    """
    body = w.subgraph_writer()
    iteration, condition, rows_done = (body.fresh_name(hint) for hint in ("iteration", "cond", "rows"))
    row_index = body.op("Unsqueeze", body.op("Add", iteration, body.int_scalar(1)), body.ints(0))  # [1] = i
    l_row = body.op("Gather", system, row_index, axis=3)  # [B, H, N, 1, C]
    l_prefix = body.op("Slice", l_row, body.ints(0), row_index, body.ints(4))  # [B, H, N, 1, i]
    unit_row = body.op("Gather", identity, row_index, axis=0)  # [1, C]
    new_row = body.op("Sub", unit_row, body.op("MatMul", l_prefix, rows_done))  # [B, H, N, 1, C]
    grown = body.op("Concat", rows_done, new_row, axis=3)  # [B, H, N, i + 1, C]
    condition_info = helper.make_tensor_value_info(condition, TensorProto.BOOL, [])
    iteration_info = helper.make_tensor_value_info(iteration, TensorProto.INT64, [])
    body_graph = helper.make_graph(
        body.nodes,
        "gdr_forward_substitution",
        [iteration_info, condition_info, _float_info(rows_done, 5)],
        [condition_info, _float_info(grown, 5)],  # the condition passes straight through
    )
    first_row_shape = w.op("Concat", w.dims(system, 0, 3), w.ints(1, CHUNK_SIZE), axis=0)
    first_row = w.op("Expand", w.op("Slice", identity, w.ints(0), w.ints(1)), first_row_shape)  # row 0 = e_0
    return w.op("Loop", w.int_scalar(CHUNK_SIZE - 1), "", first_row, body=body_graph)


def _pair_axes(w: _NodeWriter, positions: str) -> tuple[str, str]:
    """positions [C] as a column [C, 1] and a row [1, C], to build [C, C] masks by broadcasting."""
    return w.op("Unsqueeze", positions, w.ints(1)), w.op("Unsqueeze", positions, w.ints(0))


def _chunk_scan_body(w: _NodeWriter) -> onnx.GraphProto:
    """Scan body over one chunk: carries the state [B, H, Dk, Dv], emits the chunk output [B, H, C, Dv]."""
    body = w.subgraph_writer()
    names = [body.fresh_name(hint) for hint in ("state", "u", "w", "q_dec", "attn", "k_dec", "chunk_decay")]
    state, new_values, k_cumdecay, query_decayed, intra_attention, key_decayed, chunk_decay = names
    # The part of each update the carried state already predicts is taken out (delta rule).
    correction = body.op("Sub", new_values, body.op("MatMul", k_cumdecay, state))  # [B, H, C, Dv]
    from_state = body.op("MatMul", query_decayed, state)  # [B, H, C, Dv]
    out = body.op("Add", from_state, body.op("MatMul", intra_attention, correction))
    key_columns = body.op("Transpose", key_decayed, perm=[0, 1, 3, 2])  # [B, H, Dk, C]
    carried_over = body.op("Mul", state, chunk_decay)
    new_state = body.op("Add", carried_over, body.op("MatMul", key_columns, correction))
    inputs = [_float_info(name, 4) for name in names]
    return body.graph("gdr_chunk_scan", inputs, [(new_state, 4), (out, 4)])


def _chunked_branch(w: _NodeWriter, q: str, k: str, v: str, g: str, beta: str, state: str) -> onnx.GraphProto:
    """Chunked prefill; inputs head-major: q, k [B, H, T, Dk], v [B, H, T, Dv], g, beta [B, H, T]."""
    seq_len = w.dims(v, 2, 3)  # [1]
    chunk = w.ints(CHUNK_SIZE)
    pad = w.op("Mod", w.op("Sub", chunk, w.op("Mod", seq_len, chunk)), chunk)
    qc, kc, vc = (_pad_to_chunks(w, x, pad, has_feature_axis=True) for x in (q, k, v))  # [B, H, N, C, D]
    gc, bc = (_pad_to_chunks(w, x, pad, has_feature_axis=False) for x in (g, beta))  # [B, H, N, C]
    beta_column = w.op("Unsqueeze", bc, w.ints(4))  # [B, H, N, C, 1]
    k_beta = w.op("Mul", kc, beta_column)
    v_beta = w.op("Mul", vc, beta_column)
    cum_decay = w.op("CumSum", gc, w.int_scalar(3))  # [B, H, N, C], log of decay since chunk start
    positions = w.op("Range", w.int_scalar(0), w.int_scalar(CHUNK_SIZE), w.int_scalar(1))  # [C]
    column, row = _pair_axes(w, positions)
    # pairwise[i, j] = cum_i - cum_j; masked to -inf above the diagonal BEFORE exp so nothing overflows.
    pairwise = w.op("Sub", w.op("Unsqueeze", cum_decay, w.ints(4)), w.op("Unsqueeze", cum_decay, w.ints(3)))
    upper = w.op("Less", column, row)  # [C, C], i < j
    pair_decay = w.op("Exp", w.op("Where", upper, w.float_scalar(float("-inf")), pairwise))
    key_t = w.op("Transpose", kc, perm=[0, 1, 2, 4, 3])  # [B, H, N, Dk, C]
    ut_system = w.op("Mul", w.op("MatMul", k_beta, key_t), pair_decay)  # [B, H, N, C, C]
    intra_attention = w.op("Mul", w.op("MatMul", qc, key_t), pair_decay)
    identity = w.op("Cast", w.op("Equal", column, row), to=_FLOAT)  # [C, C]
    # The substitution reads only the strictly-lower part of ut_system: no mask needed.
    inverse = _forward_substitution_inverse(w, ut_system, identity)  # [B, H, N, C, C]
    decay_from_start = w.op("Unsqueeze", w.op("Exp", cum_decay), w.ints(4))  # [B, H, N, C, 1]
    new_values = w.op("MatMul", inverse, v_beta)  # [B, H, N, C, Dv]
    k_cumdecay = w.op("MatMul", inverse, w.op("Mul", k_beta, decay_from_start))  # [B, H, N, C, Dk]
    query_decayed = w.op("Mul", qc, decay_from_start)
    cum_last = w.op("Slice", cum_decay, w.ints(-1), w.ints(CHUNK_SIZE), w.ints(3))  # [B, H, N, 1]
    decay_to_end = w.op("Exp", w.op("Sub", cum_last, cum_decay))  # [B, H, N, C]
    key_decayed = w.op("Mul", kc, w.op("Unsqueeze", decay_to_end, w.ints(4)))
    chunk_decay = w.op("Unsqueeze", w.op("Exp", cum_last), w.ints(4))  # [B, H, N, 1, 1]
    scan_inputs = [new_values, k_cumdecay, query_decayed, intra_attention, key_decayed, chunk_decay]
    final_state, chunk_outputs = w.op_multi(
        "Scan",
        [state, *scan_inputs],
        2,
        body=_chunk_scan_body(w),
        num_scan_inputs=len(scan_inputs),
        scan_input_axes=[2] * len(scan_inputs),
        scan_output_axes=[2],
    )  # chunk_outputs [B, H, N, C, Dv]
    flat_shape = w.op("Concat", w.ints(0, 0, -1), w.dims(v, 3, 4), axis=0)
    padded_out = w.op("Reshape", chunk_outputs, flat_shape)  # [B, H, N*C, Dv]
    out = w.op("Slice", padded_out, w.ints(0), seq_len, w.ints(2))
    return w.graph("gdr_chunked", [], [(out, 4), (final_state, 4)])


def build_function_proto() -> onnx.FunctionProto:
    """The ``GatedDeltaRule`` FunctionProto (domain DOMAIN, attribute ``scale``)."""
    w = _NodeWriter()
    query, key, value, g, beta, initial_state = INPUT_NAMES
    q32, k32, v32, g32, beta32 = (w.op("Cast", x, to=_FLOAT) for x in (query, key, value, g, beta))
    ratio = w.op("Div", w.dims(value, 2, 3), w.dims(key, 2, 3))  # value heads per key head
    q_scaled = w.op("Mul", _repeat_heads(w, q32, ratio), w.scale_from_attribute())
    k_heads = _repeat_heads(w, k32, ratio)
    # Head-major layout: [B, T, H, D] -> [B, H, T, D]; [B, T, H] -> [B, H, T].
    q_h, k_h, v_h = (w.op("Transpose", x, perm=[0, 2, 1, 3]) for x in (q_scaled, k_heads, v32))
    g_h, beta_h = (w.op("Transpose", x, perm=[0, 2, 1]) for x in (g32, beta32))
    state = w.op("Cast", initial_state, to=_FLOAT)
    is_single_token = w.op("Equal", w.op("Shape", value, start=1, end=2), w.ints(1))
    branch_args = (q_h, k_h, v_h, g_h, beta_h, state)
    out_h, final_state = w.op_multi(
        "If",
        [w.op("Squeeze", is_single_token)],
        2,
        then_branch=_recurrent_step_branch(w.subgraph_writer(), *branch_args),
        else_branch=_chunked_branch(w.subgraph_writer(), *branch_args),
    )
    out = w.op("Transpose", out_h, perm=[0, 2, 1, 3])  # [B, T, Hv, Dv]
    w.nodes.append(helper.make_node("CastLike", [out, value], [OUTPUT_NAMES[0]]))
    w.nodes.append(helper.make_node("Identity", [final_state], [OUTPUT_NAMES[1]]))
    return helper.make_function(
        DOMAIN,
        OP_TYPE,
        list(INPUT_NAMES),
        list(OUTPUT_NAMES),
        w.nodes,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        attributes=[SCALE_ATTRIBUTE],
    )
