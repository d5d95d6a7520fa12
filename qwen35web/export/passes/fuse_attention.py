"""Full attention -> com.microsoft::GroupQueryAttention (`--ops fused` only).

The traced layer (per full-attention layer i; q/k already RMS-normed, [B, T, H, hd] "BSNH"):

    q, k       = rotary(Transpose(q_bsnh)), rotary(Transpose(k_bsnh))          # [B, H(kv), T, hd]
    present.k  = Concat(past_key_values.i.key, k, axis=2)                      # [B, Hkv, P+T, hd]
    present.v  = Concat(past_key_values.i.value, Transpose(v_bsnh), axis=2)
    probs      = Softmax(MatMul(q, repeat_kv(present.k)^T) * scale + bias)     # bias [B, 1, T, P+T]
    out        = Reshape(Transpose(MatMul(probs, repeat_kv(present.v))))       # [B, T, H*hd]

becomes RotaryEmbedding on the packed q and k (see fuse_rotary) and one GroupQueryAttention:

    GQA(q3, k3, v3, past_key, past_value, seqlens_k = total-1 per row, total_sequence_length,
        attention_bias = bias) -> out, present.k, present.v

Why this is exact: GQA's own causal mask (query t sees keys <= P+t) is the causal part of the
bias, and the bias adds the padding part (0 or float32 min, as before). Every row claims the
full length (seqlens_k = P+T-1), so GQA's right-padding bookkeeping never drops a key, and the
present caches are plain [B, Hkv, P+T, hd] concatenations. Rows whose every key is padding
(left-padding positions) differ: GQA averages over the causal keys only, the traced graph over
all; such rows never reach a real token's output (their keys are masked for everyone else).

GQA cannot serve every call: the CPU kernel refuses several new tokens on a non-empty cache with
batch > 1, and onnxruntime-web's WebGPU kernel (1.30, 1.31.1) is wrong from 32 new tokens on
(docs/upstream-gqa-webgpu.md). So the kernel
sits in an `If` (attention_fallback) whose other branch is the same attention in standard ops;
by default the kernel runs the decode steps (one new token) and the branch everything else.
The q/k norms stay outside (SimplifiedLayerNormalization): GQA's q_norm_weight/k_norm_weight
inputs are honoured only by the CUDA and WebGPU providers, the CPU and wasm kernels refuse them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.attention_fallback import GuardConditions, guard_with_fallback
from qwen35web.export.passes.fuse_rotary import RotaryCacheBuilder, RotaryMatch, match_rotary, rotary_node
from qwen35web.export.passes.graph_match import (
    binary_inputs,
    int_attribute,
    int_constants,
    ints_attribute,
    producer,
    scalar_constant,
    shared_constant,
    static_dim,
)

log = logging.getLogger(__name__)

GROUP_QUERY_ATTENTION = "GroupQueryAttention"
_BNSH = [0, 2, 1, 3]  # [B, T, H, hd] <-> [B, H, T, hd]


@dataclass(frozen=True)
class AttentionMatch:
    """One traced attention core; the *_bsnh values are [B, T, heads, head_dim]."""

    query: RotaryMatch
    key: RotaryMatch
    query_bsnh: ir.Value
    key_bsnh: ir.Value
    value_bsnh: ir.Value
    past_key: ir.Value
    past_value: ir.Value
    present_key: ir.Value
    present_value: ir.Value
    bias: ir.Value
    scale: float
    output: ir.Value  # [B, T, H*hd]
    heads: int
    kv_heads: int


def _transposed_from(value: ir.Value | None, perm: list[int]) -> ir.Value | None:
    node = producer(value, "Transpose")
    if node is None or ints_attribute(node, "perm") != perm:
        return None
    return node.inputs[0]


def _strip_repeat_kv(value: ir.Value | None) -> ir.Value | None:
    """repeat_interleave over heads as traced: Reshape(Expand(Unsqueeze(x, [2]))) -> x."""
    reshape = producer(value, "Reshape")
    expand = producer(reshape.inputs[0], "Expand") if reshape is not None else None
    unsqueeze = producer(expand.inputs[0], "Unsqueeze") if expand is not None else None
    if unsqueeze is None:
        return value  # one query head per kv head: no repeat was traced
    return unsqueeze.inputs[0] if int_constants(unsqueeze.inputs[1]) == [2] else None


def _cache_concat(present: ir.Value | None) -> tuple[ir.Value, ir.Value] | None:
    """present = Concat(past graph input, new, axis=2), a graph output -> (past, new)."""
    node = producer(present, "Concat")
    if present is None or node is None or len(node.inputs) != 2 or int_attribute(node, "axis", 0) != 2:
        return None
    past, new = node.inputs
    if past is None or new is None or not past.is_graph_input() or not present.is_graph_output():
        return None
    return past, new


def _scores(probs_input: ir.Value) -> tuple[ir.Node, ir.Value, float] | None:
    """Softmax input = MatMul(q, k^T) * scale + bias -> (scores MatMul, bias, scale)."""
    pair = binary_inputs(producer(probs_input, "Add"))
    if pair is None:
        return None
    for scaled, bias in (pair, pair[::-1]):
        factors = binary_inputs(producer(scaled, "Mul"))
        if factors is None:
            continue
        for product, scale_value in (factors, factors[::-1]):
            scores, scale = producer(product, "MatMul"), scalar_constant(scale_value)
            if scores is not None and scale is not None:
                return scores, bias, scale
    return None


def _output_of(context: ir.Value) -> ir.Value | None:
    """MatMul(probs, v) [B, H, T, hd] -> Transpose -> Reshape [B, T, H*hd]: the Reshape's output."""
    readers = [user for user, _ in context.uses()]
    if len(readers) != 1 or readers[0].op_type != "Transpose" or ints_attribute(readers[0], "perm") != _BNSH:
        return None
    after = [user for user, _ in readers[0].outputs[0].uses()]
    if len(after) != 1 or after[0].op_type != "Reshape" or after[0].domain != "":
        return None
    return after[0].outputs[0]


def match_attention(softmax: ir.Node) -> AttentionMatch | None:
    """Walk out from one Softmax to the whole traced attention core (module docstring)."""
    if softmax.op_type != "Softmax" or int_attribute(softmax, "axis", -1) not in (-1, 3):
        return None
    found = _scores(softmax.inputs[0]) if softmax.inputs[0] is not None else None
    readers = [user for user, _ in softmax.outputs[0].uses()]
    if found is None or len(readers) != 1 or readers[0].op_type != "MatMul":
        return None
    scores, bias, scale = found
    context = readers[0]
    present_key = _strip_repeat_kv(_transposed_from(scores.inputs[1], [0, 1, 3, 2]))
    present_value = _strip_repeat_kv(context.inputs[1])
    key_cache, value_cache = _cache_concat(present_key), _cache_concat(present_value)
    query, output = match_rotary(scores.inputs[0]), _output_of(context.outputs[0])
    if key_cache is None or value_cache is None or query is None or output is None:
        return None
    assert present_key is not None and present_value is not None
    key = match_rotary(key_cache[1])
    query_bsnh, value_bsnh = _transposed_from(query.x, _BNSH), _transposed_from(value_cache[1], _BNSH)
    key_bsnh = _transposed_from(key.x, _BNSH) if key is not None else None
    if key is None or query_bsnh is None or key_bsnh is None or value_bsnh is None:
        return None
    if key.frequencies is not query.frequencies or key.rotary_dim != query.rotary_dim:
        return None
    heads, kv_heads = static_dim(query_bsnh, 2), static_dim(key_bsnh, 2)
    head_dim = static_dim(query_bsnh, 3)
    # GQA's own checks: head_size a multiple of 8, query heads a multiple of kv heads.
    if heads is None or kv_heads is None or head_dim is None or head_dim % 8 or heads % kv_heads:
        return None
    return AttentionMatch(
        query, key, query_bsnh, key_bsnh, value_bsnh, key_cache[0], value_cache[0],
        present_key, present_value, bias, scale, output, heads, kv_heads,
    )  # fmt: skip


class _LengthInputs:
    """seqlens_k [B] int32 (= total-1 on every row) and total_sequence_length [1] int32, per bias."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self._built: dict[ir.Value, tuple[ir.Value, ir.Value]] = {}

    def get(self, bias: ir.Value) -> tuple[ir.Value, ir.Value]:
        if bias not in self._built:
            self._built[bias] = self._build(bias)
        return self._built[bias]

    def _build(self, bias: ir.Value) -> tuple[ir.Value, ir.Value]:
        one = shared_constant(self.graph, "gqa_one", np.array([1], np.int64))
        total = ir.node("Shape", [bias], {"start": 3, "end": 4}, name="gqa_total_length")  # [1]
        batch = ir.node("Shape", [bias], {"start": 0, "end": 1}, name="gqa_batch")  # [1]
        last = ir.node("Sub", [total.outputs[0], one], name="gqa_last_position")
        rows = ir.node("Expand", [last.outputs[0], batch.outputs[0]], name="gqa_rows")  # [B]
        int32 = ir.DataType.INT32
        seqlens = ir.node("Cast", [rows.outputs[0]], {"to": int32}, name="gqa_seqlens_k")
        total32 = ir.node("Cast", [total.outputs[0]], {"to": int32}, name="gqa_total_sequence_length")
        nodes = [total, batch, last, rows, seqlens, total32]
        maker = bias.producer()
        if maker is None:
            self.graph.insert_before(next(iter(self.graph)), nodes)
        else:
            self.graph.insert_after(maker, nodes)
        return seqlens.outputs[0], total32.outputs[0]


def _packed(value: ir.Value, graph: ir.Graph, name: str) -> ir.Node:
    """[B, T, H, hd] -> [B, T, H*hd] (a view: no copy)."""
    shape = shared_constant(graph, "gqa_packed_shape", np.array([0, 0, -1], np.int64))
    return ir.node("Reshape", [value, shape], name=name)


def gqa_nodes(
    match: AttentionMatch, graph: ir.Graph, rotary: RotaryCacheBuilder, lengths: _LengthInputs, name: str
) -> list[ir.Node]:
    """Packing, rotary and the GQA node for one match; the GQA node is last (3 outputs)."""
    caches = rotary.caches(graph, match.query.frequencies)
    seqlens, total = lengths.get(match.bias)
    rot = match.query.rotary_dim
    query = _packed(match.query_bsnh, graph, f"{name}_query_packed")
    key = _packed(match.key_bsnh, graph, f"{name}_key_packed")
    value = _packed(match.value_bsnh, graph, f"{name}_value_packed")
    query_rope = rotary_node(query.outputs[0], caches, rot, match.heads, f"{name}_query_rope")
    key_rope = rotary_node(key.outputs[0], caches, rot, match.kv_heads, f"{name}_key_rope")
    inputs: list[ir.Value | None] = [
        query_rope.outputs[0], key_rope.outputs[0], value.outputs[0], match.past_key, match.past_value,
        seqlens, total, None, None, None, match.bias,
    ]  # fmt: skip
    attention = ir.node(
        GROUP_QUERY_ATTENTION,
        inputs,
        {"num_heads": match.heads, "kv_num_heads": match.kv_heads, "scale": match.scale},
        domain=MS_DOMAIN,
        num_outputs=3,
        name=f"{name}_gqa",
    )
    return [query, key, value, query_rope, key_rope, attention]


def _take_over(old: ir.Value, new: ir.Value) -> None:
    """Point every reader (and the graph output, with its name) of `old` at `new`."""
    name = old.name
    new.type, new.shape = old.type, old.shape
    ir.convenience.replace_all_uses_with(old, new, replace_graph_outputs=True)
    old.name = None
    new.name = name


class FuseAttention(ir.passes.InPlacePass):
    """Replace each traced attention core by rotary + GQA; the old nodes die in the unused sweep.

    GQA sits in an If whose other branch runs the same attention in standard ops
    (attention_fallback). With `decode_only` (the default, safe on every execution provider) GQA
    serves single-token steps only; without it, every call shape onnxruntime's CPU kernel accepts.
    `count` holds how many cores the last call replaced.
    """

    def __init__(self, rotary: RotaryCacheBuilder | None = None, decode_only: bool = True) -> None:
        super().__init__()
        self.rotary = rotary or RotaryCacheBuilder()
        self.decode_only = decode_only
        self.count = 0

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        lengths = _LengthInputs(graph)
        conditions = GuardConditions(graph, self.decode_only)
        self.count = 0
        for softmax in [n for n in graph if n.op_type == "Softmax" and n.domain == ""]:
            match = match_attention(softmax)
            if match is None or match.output.dtype is None:  # an If's branch outputs need a type
                continue
            anchor = match.output.producer()
            assert anchor is not None
            name = f"attention_{self.count}"
            nodes = gqa_nodes(match, graph, self.rotary, lengths, name)
            nodes[-1] = guard_with_fallback(nodes[-1], graph, conditions, match.output.dtype)
            # Before the output Reshape: all inputs are its ancestors, all readers come after it.
            graph.insert_before(anchor, nodes)
            output, present_key, present_value = nodes[-1].outputs
            for old, new in (
                (match.output, output),
                (match.present_key, present_key),
                (match.present_value, present_value),
            ):
                _take_over(old, new)
            self.count += 1
        if self.count:
            model.opset_imports.setdefault(MS_DOMAIN, 1)
        return ir.passes.PassResult(model, modified=self.count > 0)
