"""The rounding the PyTorch reference applies in `--validate`: a model given, in place, the weights
(and, for q8, the input rounding) a quantized graph computes with.

`--validate` judges a quantized graph against PyTorch holding these same rounded weights, so the
check still catches a wrong graph; the error against the float model is reported beside it.
"""

from __future__ import annotations

import numpy as np
import torch

from qwen35web.export.quantization.columns import dequantize_columns, quantize_activations, quantize_columns
from qwen35web.export.quantization.nbits import EMBEDDING_BITS, block_quantize, dequantize


def _head_weight(module: torch.nn.Module) -> torch.Tensor | None:
    """The LM head's weight (transformers' output embeddings): the table itself when tied."""
    get_head = getattr(module, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    return head.weight if isinstance(head, torch.nn.Linear) else None


def _round_blockwise(weight: torch.Tensor, block_size: int, symmetric: bool, bits: int) -> None:
    rows = weight.detach().cpu().numpy()  # [N, K] (Linear) or [V, D] (Embedding): blocks along the last
    quantized = block_quantize(rows.T, block_size, symmetric, bits)
    weight.copy_(torch.from_numpy(np.ascontiguousarray(dequantize(quantized, rows.shape[1]).T)))


def fake_quantize_module(
    module: torch.nn.Module, *, block_size: int = 32, symmetric: bool = False, embedding: str = "int4"
) -> None:
    """The weights a q4/q4f16 graph computes with: every `nn.Linear` weight int4 in blocks along K,
    and the token table and LM head (tied or not) as `embedding` says: int4, int8 (same blocks)
    or left float. The same set the passes quantize in the traced graph; a tied head is its
    embedding's parameter, so it is rounded once.
    """
    table_bits = EMBEDDING_BITS[embedding]
    tables = {id(m.weight) for m in module.modules() if isinstance(m, torch.nn.Embedding)}
    head = _head_weight(module)
    if head is not None:
        tables.add(id(head))
    done: set[int] = set()
    with torch.no_grad():
        for sub in module.modules():
            if not isinstance(sub, torch.nn.Linear | torch.nn.Embedding) or id(sub.weight) in done:
                continue
            done.add(id(sub.weight))
            bits = table_bits if id(sub.weight) in tables else 4
            if bits is not None:
                _round_blockwise(sub.weight, block_size, symmetric, bits)


def _quantize_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (quantize_activations(args[0]), *args[1:])


def fake_quantize_module_int8(module: torch.nn.Module, *, embedding: str = "int8") -> None:
    """What a q8 graph computes: int8-rounded weights, and the per-tensor uint8 rounding of every
    projection's input.

    Every `nn.Linear` weight [N, K] is rounded with one scale per output feature and every
    `nn.Embedding` table [V, D] with one scale per token: per column of the graph's [K, N] and
    [D, V] layouts. A tied head is its embedding's parameter, rounded once. With
    `embedding="float"` the table is rounded to fp16, as the graph stores it, and a tied head
    is an fp32 MatMul there (its input is not rounded).
    """
    quantize_embedding = embedding == "int8"
    embeddings = [m.weight for m in module.modules() if isinstance(m, torch.nn.Embedding)]
    embedding_ids = {id(w) for w in embeddings}
    done: set[int] = set() if quantize_embedding else set(embedding_ids)
    with torch.no_grad():
        if not quantize_embedding:
            for weight in embeddings:
                weight.copy_(weight.half().to(weight.dtype))
        for sub in module.modules():
            if isinstance(sub, torch.nn.Linear) and (
                quantize_embedding or id(sub.weight) not in embedding_ids
            ):
                sub.register_forward_pre_hook(_quantize_input)  # not a tied head kept in float
            if not isinstance(sub, torch.nn.Linear | torch.nn.Embedding) or id(sub.weight) in done:
                continue
            done.add(id(sub.weight))
            rows = sub.weight.detach().float().cpu().numpy()  # [N, K] or [V, D]
            quantized, scales = quantize_columns(rows.T)
            rounded = dequantize_columns(quantized, scales).T
            sub.weight.copy_(torch.from_numpy(np.ascontiguousarray(rounded)).to(sub.weight.dtype))
