"""Pass: int8 weights for onnxruntime-web's wasm build (`--dtype q8`).

Chosen by measurement (`python -m bench.wasm_formats`, bench/results/wasm-formats.md): in the wasm
build, `MatMulNBits` (int4 or int8) dequantizes in scalar code at 1.4–1.8 ns per weight, while
`com.microsoft::DynamicQuantizeMatMul` runs the SIMD integer GEMM: 0.27 ns per weight for one row
(decode; fp32 MatMul is 0.14 but a 0.8B fp32 model does not fit the 4 GB wasm heap) and 2.9 ns per
weight for 128 rows (prefill; fp32 7.5). So every MatMul with a constant weight [K, N] becomes
DynamicQuantizeMatMul with int8 weights and one fp32 scale per output column (symmetric, zero
point 0); the activations are quantized per tensor to uint8 at run time by the kernel.

The embedding table E [V, D] is stored once, as E^T [D, V] quantized per column (one scale per
token): the layout a tied LM head reads directly, and the lookup reads its columns with
`Gather(axis=1)`, then transposes the few gathered rows back and applies their scales.

Why not onnxruntime's `quantize_dynamic`: it rewrites a serialized ModelProto (a second fp32 copy
of every weight) and does not see a tied head through its Transpose. The rounding is one line of
numpy, written here with the layout.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir
import torch

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import add_initializer
from qwen35web.export.passes.quantize import constant_array, constant_weight, drop_unused_initializer

log = logging.getLogger(__name__)

_FP32 = (ir.DataType.FLOAT,)  # q8 quantizes fp32 graphs only
QMAX = 127  # symmetric: q in [-127, 127], so -q never overflows
_SLAB_COLUMNS = 1 << 14  # bounds the float temporaries of one step (K x 16k fp32)


def quantize_columns(weight_kn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """weight [K, N] float -> (int8 [K, N], fp32 scales [N]); weight ~= q * scale per column."""
    k, n = weight_kn.shape
    quantized = np.empty((k, n), dtype=np.int8)
    scales = np.empty(n, dtype=np.float32)
    for start in range(0, n, _SLAB_COLUMNS):
        slab = weight_kn[:, start : start + _SLAB_COLUMNS].astype(np.float32)  # [K, n_slab]
        scale = np.abs(slab).max(axis=0) / QMAX
        scale[scale == 0] = 1.0  # an all-zero column: any scale reproduces it
        quantized[:, start : start + _SLAB_COLUMNS] = np.clip(np.rint(slab / scale), -QMAX, QMAX)
        scales[start : start + _SLAB_COLUMNS] = scale
    return quantized, scales


def dequantize_columns(quantized: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The float weight [K, N] the graph computes with."""
    return quantized.astype(np.float32) * scales[None, :]


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """What DynamicQuantizeMatMul does to its input: uint8, one scale and zero point per tensor.

    onnxruntime's DynamicQuantizeLinear: the range always includes 0, scale = range / 255, zero
    point = round(-min / scale), values rounded half to even and saturated to [0, 255].
    """
    values = x.float()
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = (high - low) / 255
    if scale == 0:
        return x
    zero_point = min(max(round(-low / scale), 0), 255)  # Python's round is half to even, as ONNX's
    quantized = torch.clamp(torch.round(values / scale) + zero_point, 0, 255)
    return ((quantized - zero_point) * scale).to(x.dtype)


def _quantize_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (quantize_activations(args[0]), *args[1:])


def fake_quantize_module_int8(module: torch.nn.Module, *, quantize_embedding: bool = True) -> None:
    """Give a PyTorch model, in place, what a q8 graph computes: int8-rounded weights, and the
    per-tensor uint8 rounding of every projection's input.

    Every `nn.Linear` weight [N, K] is rounded with one scale per output feature and every
    `nn.Embedding` table [V, D] with one scale per token: per column of the graph's [K, N] and
    [D, V] layouts. A tied head is its embedding's parameter, rounded once. Without
    `quantize_embedding` the table is rounded to fp16, as the graph stores it, and a tied head
    is an fp32 MatMul there (its input is not rounded).
    """
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


def _dq_matmul(activations: ir.Value, weight: ir.Value, scales: ir.Value, name: str) -> ir.Node:
    """activations [..., K] x int8 weight [K, N] (scales [N]) -> float [..., N]."""
    return ir.node("DynamicQuantizeMatMul", [activations, weight, scales], domain=MS_DOMAIN, name=name)


def quantize_matmuls_int8(graph: ir.Graph) -> tuple[int, int, int]:
    """Replace every MatMul with a constant fp32 weight; returns (count, float bytes, int8 bytes)."""
    done: dict[str, tuple[ir.Value, ir.Value]] = {}  # a weight shared by several MatMuls: once
    count = float_bytes = quantized_bytes = 0
    for node in [n for n in graph if constant_weight(n, _FP32) is not None]:
        weight, activations = constant_weight(node, _FP32), node.inputs[0]
        assert weight is not None and weight.name is not None and activations is not None
        if weight.name not in done:
            array = constant_array(weight)  # [K, N]
            quantized, scales = quantize_columns(array)
            done[weight.name] = (
                add_initializer(graph, f"{weight.name}.q8", quantized),
                add_initializer(graph, f"{weight.name}.q8_scales", scales),
            )
            float_bytes += array.nbytes
            quantized_bytes += quantized.nbytes + scales.nbytes
            del array
        new = _dq_matmul(activations, *done[weight.name], f"{node.name}_q8")
        ir.convenience.replace_nodes_and_values(
            graph, node, [node], [new], list(node.outputs), list(new.outputs)
        )
        drop_unused_initializer(graph, weight)
        count += 1
    return count, float_bytes, quantized_bytes


def quantize_weights_int8(model: ir.Model, *, quantize_embedding: bool = True) -> ir.Model:
    """Quantize the model's MatMul weights and embedding table to int8, in place; returns it.

    With `quantize_embedding=False` the table and a tied head that reads it are stored once as fp16
    E^T and computed in fp32 (see quantize_embedding_int8.store_embedding_fp16).
    """
    from qwen35web.export.passes.quantize_embedding_int8 import (
        quantize_embedding_table_int8,
        store_embedding_fp16,
    )

    halves = [v.name for v in model.graph.initializers.values() if v.dtype == ir.DataType.FLOAT16]
    if halves:
        raise ValueError(f"q8 quantizes an fp32 graph (trace in fp32); {halves[0]!r} is fp16")
    if quantize_embedding:
        quantize_embedding_table_int8(model.graph)
    else:
        store_embedding_fp16(model.graph)
    count, float_bytes, quantized_bytes = quantize_matmuls_int8(model.graph)
    model.opset_imports[MS_DOMAIN] = 1
    log.info(
        "quantized %d MatMul weights to int8 (per column): %.1f MB -> %.1f MB",
        count,
        float_bytes / 1e6,
        quantized_bytes / 1e6,
    )
    return model
