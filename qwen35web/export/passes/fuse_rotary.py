"""Partial rotary embedding -> com.microsoft::RotaryEmbedding (`--ops fused` only).

The traced decoder rotates the first `rot` channels of each head (rot = 25 % of head_dim) with
the "rotate half" layout and passes the rest through:

    x_rot, x_pass = x[..., :rot], x[..., rot:]
    out = concat(x_rot * cos + concat(-x_rot[..., rot/2:], x_rot[..., :rot/2]) * sin, x_pass)

where cos = Cos(Unsqueeze(Concat(F, F), 1)), sin likewise, and F [B, T, rot/2] are the fp32
angles computed from `position_ids` [3, B, T]: frequency j takes its position from MRoPE row
mrope_rows[j] (t h w interleaved, see decoder.mrope_rows), times inv_freq[j].

onnxruntime's kernel looks its cos/sin up in caches by one position id per token, so a table
indexed by position (or a 262k-row constant) cannot express three different rows per token.
The caches here are instead this call's own interleaved angles, `Cos(F)` flattened to
[B*T, rot/2], and the kernel's "position ids" are row numbers 0..B*T-1 shaped [B, T]: the
kernel reads bit-identical angles for any positions (distinct MRoPE rows, left padding,
chunks), and the graph holds no big constant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import (
    binary_inputs,
    int_attribute,
    int_constants,
    producer,
    rank,
    shared_constant,
    static_dim,
)

log = logging.getLogger(__name__)

ROTARY_EMBEDDING = "RotaryEmbedding"
_ALL_THE_WAY = 2**31 - 1  # a Slice end at least this large means "to the end"


@dataclass(frozen=True)
class RotaryMatch:
    """One rotated tensor: `output` = rotary(x) with `frequencies` F [B, T, rot/2]."""

    x: ir.Value
    frequencies: ir.Value
    rotary_dim: int
    output: ir.Value
    nodes: tuple[ir.Node, ...]


@dataclass(frozen=True)
class RotaryCaches:
    """Per-call cos/sin caches [B*T, rot/2] and the row index of each token [B, T]."""

    cos: ir.Value
    sin: ir.Value
    positions: ir.Value


def _last_axis_slice(value: ir.Value | None) -> tuple[ir.Node, ir.Value, int, int] | None:
    """Slice(x, [start], [end], [last axis], [1]) -> (node, x, start, end)."""
    node = producer(value, "Slice")
    if node is None or len(node.inputs) < 4 or node.inputs[0] is None:
        return None
    starts, ends, axes = (int_constants(node.inputs[i]) for i in (1, 2, 3))
    steps = int_constants(node.inputs[4]) if len(node.inputs) > 4 else [1]
    x_rank = rank(node.inputs[0])
    if None in (starts, ends, axes, steps) or x_rank is None:
        return None
    assert starts is not None and ends is not None and axes is not None
    if len(starts) != 1 or steps != [1] or axes[0] not in (-1, x_rank - 1):
        return None
    return node, node.inputs[0], starts[0], ends[0]


def _concat_last(value: ir.Value | None, count: int) -> ir.Node | None:
    node = producer(value, "Concat")
    if node is None or len(node.inputs) != count:
        return None
    axis = int_attribute(node, "axis", 0)
    node_rank = rank(node.outputs[0])
    return node if axis == -1 or (node_rank is not None and axis == node_rank - 1) else None


def _match_rotate_half(value: ir.Value, x_rot: ir.Value, half: int) -> list[ir.Node] | None:
    """concat(-x_rot[..., half:], x_rot[..., :half])."""
    concat = _concat_last(value, 2)
    if concat is None:
        return None
    neg = producer(concat.inputs[0], "Neg")
    high = _last_axis_slice(neg.inputs[0]) if neg is not None else None
    low = _last_axis_slice(concat.inputs[1])
    if neg is None or high is None or low is None:
        return None
    if high[1:] != (x_rot, half, high[3]) or high[3] < 2 * half or low[1:] != (x_rot, 0, half):
        return None
    return [high[0], neg, low[0], concat]


def _angles(cos: ir.Value, sin: ir.Value) -> ir.Value | None:
    """F from cos = Cos(Unsqueeze(Concat(F, F), [1])) and sin = Sin(the same Unsqueeze)."""
    cos_node, sin_node = producer(cos, "Cos"), producer(sin, "Sin")
    if cos_node is None or sin_node is None or cos_node.inputs[0] is not sin_node.inputs[0]:
        return None
    unsqueeze = producer(cos_node.inputs[0], "Unsqueeze")
    if unsqueeze is None or int_constants(unsqueeze.inputs[1]) != [1]:
        return None
    doubled = _concat_last(unsqueeze.inputs[0], 2)
    if doubled is None or doubled.inputs[0] is not doubled.inputs[1]:
        return None
    return doubled.inputs[0]


@dataclass(frozen=True)
class _RotatedPart:
    """x_rot * cos + rotated_half * sin, as matched (rotated_half not yet checked)."""

    x_rot: ir.Value
    rotated_half: ir.Value
    cos: ir.Value
    sin: ir.Value
    nodes: tuple[ir.Node, ...]


def _match_rotated_part(value: ir.Value) -> _RotatedPart | None:
    """x_rot * Cos(..) + rotated_half * Sin(..), with the operands of each op in any order."""
    add = producer(value, "Add")
    terms = binary_inputs(add)
    if add is None or terms is None:
        return None
    for cos_term, sin_term in (terms, terms[::-1]):
        cos_mul, sin_mul = producer(cos_term, "Mul"), producer(sin_term, "Mul")
        cos_pair, sin_pair = binary_inputs(cos_mul), binary_inputs(sin_mul)
        if cos_mul is None or sin_mul is None or cos_pair is None or sin_pair is None:
            continue
        for x_rot, cos in (cos_pair, cos_pair[::-1]):
            for rotated_half, sin in (sin_pair, sin_pair[::-1]):
                if producer(cos, "Cos") is not None and producer(sin, "Sin") is not None:
                    return _RotatedPart(x_rot, rotated_half, cos, sin, (cos_mul, sin_mul, add))
    return None


def match_rotary(output: ir.Value | None) -> RotaryMatch | None:
    """Match the traced partial rotary ending at `output` (see the module docstring)."""
    concat = _concat_last(output, 2)
    if output is None or concat is None or concat.inputs[0] is None:
        return None
    part = _match_rotated_part(concat.inputs[0])
    passed = _last_axis_slice(concat.inputs[1])
    front = _last_axis_slice(part.x_rot) if part is not None else None
    if part is None or passed is None or front is None or front[1] is not passed[1] or front[2] != 0:
        return None
    x, rotary_dim = front[1], front[3]
    head_dim = static_dim(x, -1)
    if head_dim is None or passed[2] != rotary_dim or passed[3] < head_dim or rotary_dim % 2:
        return None
    half_nodes = _match_rotate_half(part.rotated_half, part.x_rot, rotary_dim // 2)
    frequencies = _angles(part.cos, part.sin)
    if half_nodes is None or frequencies is None or static_dim(frequencies, -1) != rotary_dim // 2:
        return None
    nodes = (front[0], passed[0], *half_nodes, *part.nodes, concat)
    return RotaryMatch(x, frequencies, rotary_dim, output, nodes)


class RotaryCacheBuilder:
    """Builds (once per angle tensor F) the caches and row indices onnxruntime's kernel reads.

    One builder is shared by the attention and the rotary passes of a run, so a tensor F that
    feeds both gets one set of caches.
    """

    def __init__(self) -> None:
        self._built: dict[ir.Value, RotaryCaches] = {}

    def caches(self, graph: ir.Graph, frequencies: ir.Value) -> RotaryCaches:
        if frequencies not in self._built:
            self._built[frequencies] = self._build(graph, frequencies)
        return self._built[frequencies]

    def _build(self, graph: ir.Graph, frequencies: ir.Value) -> RotaryCaches:
        half = static_dim(frequencies, -1)
        assert half is not None, "match_rotary checks the angles' last dim"
        flat_shape = shared_constant(graph, "rotary_cache_shape", np.array([-1, half], np.int64))
        zero = shared_constant(graph, "rotary_row_start", np.array(0, np.int64))
        one = shared_constant(graph, "rotary_row_step", np.array(1, np.int64))
        cos = ir.node("Cos", [frequencies], name="rotary_cos")
        sin = ir.node("Sin", [frequencies], name="rotary_sin")
        cos_cache = ir.node("Reshape", [cos.outputs[0], flat_shape], name="rotary_cos_cache")  # [B*T, rot/2]
        sin_cache = ir.node("Reshape", [sin.outputs[0], flat_shape], name="rotary_sin_cache")
        batch_seq = ir.node("Shape", [frequencies], {"start": 0, "end": 2}, name="rotary_batch_seq")  # [2]
        count = ir.node("ReduceProd", [batch_seq.outputs[0]], {"keepdims": 0}, name="rotary_rows")
        rows = ir.node("Range", [zero, count.outputs[0], one], name="rotary_row_range")  # [B*T]
        positions = ir.node("Reshape", [rows.outputs[0], batch_seq.outputs[0]], name="rotary_positions")
        nodes = [cos, sin, cos_cache, sin_cache, batch_seq, count, rows, positions]
        maker = frequencies.producer()
        if maker is None:
            graph.insert_before(next(iter(graph)), nodes)
        else:
            graph.insert_after(maker, nodes)
        return RotaryCaches(cos_cache.outputs[0], sin_cache.outputs[0], positions.outputs[0])


def rotary_node(x: ir.Value, caches: RotaryCaches, rotary_dim: int, num_heads: int, name: str) -> ir.Node:
    """RotaryEmbedding over x: 4D [B, H, T, hd] or 3D [B, T, H*hd] (then num_heads says H)."""
    return ir.node(
        ROTARY_EMBEDDING,
        [x, caches.positions, caches.cos, caches.sin],
        {"rotary_embedding_dim": rotary_dim, "num_heads": num_heads, "interleaved": 0},
        domain=MS_DOMAIN,
        name=name,
    )


class FuseRotary(ir.passes.InPlacePass):
    """Replace every remaining traced rotary on a 4D [B, H, T, hd] tensor by one kernel node.

    `count` holds how many were replaced by the last call.
    """

    def __init__(self, builder: RotaryCacheBuilder | None = None) -> None:
        super().__init__()
        self.builder = builder or RotaryCacheBuilder()
        self.count = 0

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        self.count = 0
        for node in list(graph):
            if node.graph is not graph or node.op_type != "Concat" or node.domain != "":
                continue
            match = match_rotary(node.outputs[0])
            heads = static_dim(match.x, 1) if match is not None else None
            if match is None or heads is None or rank(match.x) != 4:
                continue
            fused = rotary_node(
                match.x,
                self.builder.caches(graph, match.frequencies),
                match.rotary_dim,
                heads,
                f"{node.name or 'rotary'}_rope",
            )
            ir.convenience.replace_nodes_and_values(
                graph, node, [], [fused], [match.output], [fused.outputs[0]]
            )
            self.count += 1
        if self.count:
            model.opset_imports.setdefault(MS_DOMAIN, 1)
        return ir.passes.PassResult(model, modified=self.count > 0)
