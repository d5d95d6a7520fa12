"""How many weights a Qwen3.5 decoder holds and how many bytes of them one decode step reads.

The shapes come from the exporter's own decoder built on the meta device (no storage, so a 9B
config costs nothing), so they are the ones the traced graph has. Bytes follow the layouts the
passes write (`quantization.nbits`, `quantization.columns`): what a weight format costs can be
computed for any config without exporting it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from qwen35web.export.decoder import Qwen35Decoder
from qwen35web.runtime.bundle_format import ModelFacts


@dataclass(frozen=True)
class WeightShapes:
    """The decoder's weights by role; a projection is [K, N] as its MatMul reads it."""

    projections: tuple[tuple[int, int], ...]  # every nn.Linear of the layers
    table: tuple[int, int]  # the token embedding [V, D]
    head: tuple[int, int] | None  # an untied LM head [D, V]; None when it is the table
    float_elements: int  # norms, conv kernels, A_log, dt_bias: float in every format

    def parameter_count(self) -> int:
        head = 0 if self.head is None else math.prod(self.head)
        projections = sum(k * n for k, n in self.projections)
        return projections + math.prod(self.table) + head + self.float_elements


def weight_shapes(spec: ModelFacts) -> WeightShapes:
    with torch.device("meta"):
        decoder = Qwen35Decoder(spec)
    head = getattr(decoder, "lm_head", None)
    linears = [m for m in decoder.modules() if isinstance(m, nn.Linear) and m is not head]
    projections = tuple((m.in_features, m.out_features) for m in linears)
    counted = {id(m.weight) for m in linears} | {id(decoder.model.embed_tokens.weight)}
    if head is not None:
        counted.add(id(head.weight))
    rest = sum(p.numel() for p in decoder.parameters() if id(p) not in counted)
    return WeightShapes(
        projections=projections,
        table=(spec.vocab_size, spec.hidden_size),
        head=None if head is None else (spec.hidden_size, spec.vocab_size),
        float_elements=rest,
    )


@dataclass(frozen=True)
class Storage:
    """How one weight [K, N] is held at run time: float, MatMulNBits blocks or int8 columns."""

    kind: str  # "float" | "blocks" | "columns"
    bits: int  # float: 32 or 16; blocks: 4 or 8; columns: 8
    block_size: int = 0  # blocks along K
    scale_bytes: int = 4  # blocks: the activations' float type
    zero_points: bool = True  # blocks: asymmetric (the passes' default)

    def nbytes(self, k: int, n: int) -> int:
        if self.kind == "float":
            return k * n * self.bits // 8
        if self.kind == "columns":
            return k * n + 4 * n  # int8 [K, N] + fp32 scales [N]
        k_blocks = -(-k // self.block_size)
        packed = n * k_blocks * self.block_size * self.bits // 8
        zero_points = n * -(-k_blocks * self.bits // 8) if self.zero_points else 0
        return packed + n * k_blocks * self.scale_bytes + zero_points

    def data_nbytes(self, k: int, n: int) -> int:
        """The largest single tensor of this weight (the packed values, or the float matrix)."""
        if self.kind == "blocks":
            return n * -(-k // self.block_size) * self.block_size * self.bits // 8
        return k * n * self.bits // 8 if self.kind == "float" else k * n


@dataclass(frozen=True)
class FormatCost:
    """What a format costs for one model: bytes read per decoded token, stored, largest tensor."""

    bytes_per_token: int  # every projection, the head, the norms and one table row
    weight_bytes: int  # everything stored, the tied table once
    largest_tensor_bytes: int  # must fit one WebGPU buffer


def format_cost(shapes: WeightShapes, projection: Storage, head: Storage, float_bits: int) -> FormatCost:
    """`head` is how the LM head and the token table are held (one copy when tied)."""
    vocab, hidden = shapes.table
    body = sum(projection.nbytes(k, n) for k, n in shapes.projections)
    table = head.nbytes(hidden, vocab)  # stored as E^T [D, V]: the head's layout
    others = shapes.float_elements * float_bits // 8
    untied = 0 if shapes.head is None else head.nbytes(*shapes.head)
    row = table // vocab  # the lookup reads one row per token
    largest = max(
        [projection.data_nbytes(k, n) for k, n in shapes.projections] + [head.data_nbytes(hidden, vocab)]
    )
    return FormatCost(
        bytes_per_token=body + others + (untied + row if shapes.head else table),
        weight_bytes=body + others + table + untied,
        largest_tensor_bytes=largest,
    )
