"""Guard a GroupQueryAttention node with an `If` that runs standard-op attention where GQA can't.

Two limits of GQA as released, both outside the graph contract's control:
  * onnxruntime's CPU (and wasm) kernel refuses several new tokens on top of a non-empty cache
    when batch > 1 ("batch_size must be 1 when sequence_length > 1 and past context is given");
  * onnxruntime-web's WebGPU kernel (1.30, still in 1.31.1) returns wrong outputs for steps of 32
    or more new tokens (measured in Chromium/SwiftShader: max-abs 0.1-1.0 at 32, 40, 64 tokens, first or
    later chunk; exact below 32 and for every decode step tried, past up to 160; minimal
    reproduction: python -m bench.gqa_webgpu, docs/upstream-gqa-webgpu.md).
So the fused graph keeps an exact fallback, and by default uses the kernel for decode only:

    If(seq == 1)                                   # `decode_only` (default): safe on every EP
    If(batch == 1 or seq == 1 or seq == total)     # `decode_only=False`: where the CPU kernel runs
        then: GroupQueryAttention(...)
        else: the traced attention, rebuilt from standard ops on GQA's own inputs

The else branch is the traced computation (Concat with the past, repeat kv heads, MatMul,
scale, + bias, Softmax, MatMul), reading the already-rotated packed q/k.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qwen35web.export.passes.graph_match import shared_constant, static_dim

_BNSH = [0, 2, 1, 3]


class GuardConditions:
    """One boolean [1] per attention bias [B, 1, T, total]: does this call run the GQA kernel?"""

    def __init__(self, graph: ir.Graph, decode_only: bool = True):
        self.graph = graph
        self.decode_only = decode_only
        self._built: dict[ir.Value, ir.Value] = {}

    def get(self, bias: ir.Value) -> ir.Value:
        if bias not in self._built:
            self._built[bias] = self._build(bias)
        return self._built[bias]

    def _build(self, bias: ir.Value) -> ir.Value:
        one = shared_constant(self.graph, "gqa_one", np.array([1], np.int64))
        seq = ir.node("Shape", [bias], {"start": 2, "end": 3}, name="gqa_guard_seq")  # [1]
        single_token = ir.node("Equal", [seq.outputs[0], one], name="gqa_guard_single_token")
        nodes = [seq, single_token]
        if not self.decode_only:
            batch = ir.node("Shape", [bias], {"start": 0, "end": 1}, name="gqa_guard_batch")
            total = ir.node("Shape", [bias], {"start": 3, "end": 4}, name="gqa_guard_total")
            single_row = ir.node("Equal", [batch.outputs[0], one], name="gqa_guard_single_row")
            no_past = ir.node("Equal", [seq.outputs[0], total.outputs[0]], name="gqa_guard_no_past")
            either = ir.node("Or", [single_row.outputs[0], single_token.outputs[0]], name="gqa_guard_or")
            allowed = ir.node("Or", [either.outputs[0], no_past.outputs[0]], name="gqa_guard")
            nodes += [batch, total, single_row, no_past, either, allowed]
        maker = bias.producer()
        if maker is None:
            self.graph.insert_before(next(iter(self.graph)), nodes)
        else:
            self.graph.insert_after(maker, nodes)
        return nodes[-1].outputs[0]


def _repeat_kv(cache: ir.Value, groups: int, heads: int, head_dim: int, graph: ir.Graph) -> list[ir.Node]:
    """[B, Hkv, S, hd] -> [B, H, S, hd], kv head j serving query heads j*g .. j*g+g-1."""
    if groups == 1:
        return []
    axis = shared_constant(graph, "gqa_fallback_axis_2", np.array([2], np.int64))
    widen = shared_constant(graph, f"gqa_fallback_expand_{groups}", np.array([1, 1, groups, 1, 1], np.int64))
    merged = shared_constant(
        graph, f"gqa_fallback_heads_{heads}", np.array([0, heads, -1, head_dim], np.int64)
    )
    unsqueeze = ir.node("Unsqueeze", [cache, axis])  # [B, Hkv, 1, S, hd]
    expand = ir.node("Expand", [unsqueeze.outputs[0], widen])  # [B, Hkv, g, S, hd]
    return [unsqueeze, expand, ir.node("Reshape", [expand.outputs[0], merged])]


def _to_heads(packed: ir.Value, heads: int, head_dim: int, graph: ir.Graph) -> list[ir.Node]:
    """[B, T, heads*hd] -> [B, heads, T, hd]."""
    split = shared_constant(graph, f"gqa_fallback_split_{heads}", np.array([0, 0, heads, head_dim], np.int64))
    reshape = ir.node("Reshape", [packed, split])
    return [reshape, ir.node("Transpose", [reshape.outputs[0]], {"perm": _BNSH})]


def _standard_attention(gqa: ir.Node, graph: ir.Graph, dtype: ir.DataType) -> ir.Graph:
    """The else branch: GQA's semantics in standard ops, outputs (out, present key, present value)."""
    query, key, value, past_key, past_value = gqa.inputs[:5]
    bias = gqa.inputs[10]
    assert query and key and value and past_key and past_value and bias
    heads, kv_heads = gqa.attributes["num_heads"].as_int(), gqa.attributes["kv_num_heads"].as_int()
    head_dim = static_dim(past_key, 3)
    assert head_dim is not None, "fuse_attention checks the cache's static head_dim"
    scale_array = np.array(gqa.attributes["scale"].as_float(), dtype.numpy())
    scale = shared_constant(graph, f"gqa_fallback_scale_{scale_array.dtype}", scale_array)
    packed = shared_constant(graph, "gqa_packed_shape", np.array([0, 0, -1], np.int64))
    nodes = [*_to_heads(query, heads, head_dim, graph), *_to_heads(key, kv_heads, head_dim, graph)]
    nodes += _to_heads(value, kv_heads, head_dim, graph)
    q4, k4, v4 = nodes[1].outputs[0], nodes[3].outputs[0], nodes[5].outputs[0]
    present_key = ir.node("Concat", [past_key, k4], {"axis": 2})  # [B, Hkv, P+T, hd]
    present_value = ir.node("Concat", [past_value, v4], {"axis": 2})
    nodes += [present_key, present_value]
    groups = heads // kv_heads
    key_repeat = _repeat_kv(present_key.outputs[0], groups, heads, head_dim, graph)
    value_repeat = _repeat_kv(present_value.outputs[0], groups, heads, head_dim, graph)
    nodes += key_repeat + value_repeat
    keys = key_repeat[-1].outputs[0] if key_repeat else present_key.outputs[0]
    values = value_repeat[-1].outputs[0] if value_repeat else present_value.outputs[0]
    keys_t = ir.node("Transpose", [keys], {"perm": [0, 1, 3, 2]})
    scores = ir.node("MatMul", [q4, keys_t.outputs[0]])  # [B, H, T, P+T]
    scaled = ir.node("Mul", [scores.outputs[0], scale])
    biased = ir.node("Add", [scaled.outputs[0], bias])
    probs = ir.node("Softmax", [biased.outputs[0]], {"axis": -1})
    context = ir.node("MatMul", [probs.outputs[0], values])  # [B, H, T, hd]
    context_t = ir.node("Transpose", [context.outputs[0]], {"perm": _BNSH})
    output = ir.node("Reshape", [context_t.outputs[0], packed])  # [B, T, H*hd]
    nodes += [keys_t, scores, scaled, biased, probs, context, context_t, output]
    outputs = [output.outputs[0], present_key.outputs[0], present_value.outputs[0]]
    _name_outputs(nodes, f"{gqa.name}_standard")
    return ir.Graph([], outputs, nodes=nodes, name=f"{gqa.name}_standard")


def _name_outputs(nodes: list[ir.Node], prefix: str) -> None:
    # A branch has its own name counter: unnamed values would collide with the main graph's.
    for index, node in enumerate(nodes):
        node.name = f"{prefix}_{index}_{node.op_type}"
        for position, output in enumerate(node.outputs):
            output.name = f"{node.name}_{position}"


def guard_with_fallback(
    gqa: ir.Node, graph: ir.Graph, conditions: GuardConditions, dtype: ir.DataType
) -> ir.Node:
    """An If node computing what `gqa` computes for every call; `gqa` moves into its then branch.

    `gqa` must not be in a graph yet; `dtype` is the activations' (branch outputs need a type).
    """
    bias = gqa.inputs[10]
    assert bias is not None, "fuse_attention always passes the attention bias"
    else_branch = _standard_attention(gqa, graph, dtype)
    _name_outputs([gqa], f"{gqa.name}_kernel")
    then_branch = ir.Graph([], list(gqa.outputs), nodes=[gqa], name=f"{gqa.name}_kernel")
    guarded = ir.node(
        "If",
        [conditions.get(bias)],
        {"then_branch": then_branch, "else_branch": else_branch},
        num_outputs=3,
        name=f"{gqa.name}_guarded",
    )
    for value in (*then_branch.outputs, *else_branch.outputs, *guarded.outputs):
        value.dtype = dtype
    return guarded
