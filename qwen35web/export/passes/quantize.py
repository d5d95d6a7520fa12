"""Pass: int4 block quantization of the weights (`--dtype q4` and `--dtype q4f16`).

Every MatMul whose right operand is a constant 2-D weight [K, N] becomes one
`com.microsoft::MatMulNBits` (4 bits, blocks of `block_size` along K, one scale per block and,
unless symmetric, one 4-bit zero point per block). The embedding table and a tied LM head are
handled by `export.passes.quantize_embedding`, which stores the table once.

The block quantization itself is onnxruntime's (`DefaultWeightOnlyQuantizer.qbits_block_quant`,
its C++ kernel), so the packing is exactly what MatMulNBits expects. We do not run
`MatMulNBitsQuantizer.process()` on the whole model: it works on a `ModelProto`, so it needs a
serialized fp32 copy of every weight next to the traced graph's own (6 GB at 0.8B), and it cannot
share the tied embedding. Here one weight is quantized at a time, in column slabs, and its float
initializer leaves the graph as soon as its int4 form is in.

Scales have the activations' dtype (MatMulNBits requires A and scales of one type): `q4` is an
fp32 graph with fp32 scales; `q4f16` is the fp16 graph (traced in fp16, recurrent state still
fp32) with fp16 scales.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir
import torch
from onnxruntime.quantization.matmul_nbits_quantizer import (
    DefaultWeightOnlyQuantConfig,
    DefaultWeightOnlyQuantizer,
)

from qwen35web.export.ops.domain import MS_DOMAIN
from qwen35web.export.passes.graph_match import add_initializer

log = logging.getLogger(__name__)

BITS = 4
ACCURACY_LEVELS = (0, 1, 2, 3, 4)  # MatMulNBits: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 compute
# Weights are quantized in column slabs of at most this many elements (64 MB of fp32): ORT's
# kernel needs a C-contiguous [K, N] buffer, and a slab bounds the copy that makes one.
_SLAB_ELEMENTS = 1 << 24
_FLOAT_TYPES = {False: ir.DataType.FLOAT, True: ir.DataType.FLOAT16}


@dataclass(frozen=True)
class QuantizedWeight:
    """One weight [K, N] in MatMulNBits' layout: output features first, K packed in blocks."""

    packed: np.ndarray  # uint8 [N, k_blocks, block_size / 2]; element 2i in the low nibble
    scales: np.ndarray  # float [N, k_blocks], the activations' dtype
    zero_points: np.ndarray | None  # uint8 [N, ceil(k_blocks / 2)], two blocks per byte; None: 8

    def nbytes(self) -> int:
        extra = 0 if self.zero_points is None else self.zero_points.nbytes
        return self.packed.nbytes + self.scales.nbytes + extra


@dataclass(frozen=True)
class QuantizeSettings:
    block_size: int
    accuracy_level: int
    symmetric: bool
    fp16_scales: bool

    @property
    def float_type(self) -> ir.DataType:
        return _FLOAT_TYPES[self.fp16_scales]


def block_quantize(weight_kn: np.ndarray, block_size: int, symmetric: bool) -> QuantizedWeight:
    """Quantize weight [K, N] (fp32 or fp16; any strides) blockwise along K with onnxruntime's kernel."""
    k, n = weight_kn.shape
    k_blocks = -(-k // block_size)
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric, bits=BITS)
    quantizer = DefaultWeightOnlyQuantizer(config)
    packed = np.empty((n, k_blocks, block_size * BITS // 8), dtype=np.uint8)
    scales = np.empty((n, k_blocks), dtype=weight_kn.dtype)
    zero_points = np.empty((n, -(-k_blocks // 2)), dtype=np.uint8)
    step = max(1, _SLAB_ELEMENTS // k)
    for start in range(0, n, step):
        # The kernel reads the buffer as C-contiguous and silently ignores strides (a transposed
        # view gives wrong numbers, no error), so each slab is copied contiguous first.
        slab = np.ascontiguousarray(weight_kn[:, start : start + step])  # [K, n_slab]
        slab_packed, slab_scales, slab_zero_points = quantizer.qbits_block_quant(slab)
        packed[start : start + step] = slab_packed
        scales[start : start + step] = slab_scales
        zero_points[start : start + step] = slab_zero_points
    return QuantizedWeight(packed, scales, None if symmetric else zero_points)


def _nibbles(packed: np.ndarray, rows: int) -> np.ndarray:
    """uint8 [rows, ...] -> the 4-bit values [rows, 2 * bytes per row], low nibble first."""
    flat = packed.reshape(rows, -1)
    return np.stack([flat & 0xF, flat >> 4], axis=-1).reshape(rows, -1)


def dequantize(weight: QuantizedWeight, k: int) -> np.ndarray:
    """The float weight [K, N] that MatMulNBits computes with: scale * (q - zero_point), per block.

    The numpy statement of the layout; tests and references use it.
    """
    n, k_blocks = weight.scales.shape
    values = _nibbles(weight.packed, n).astype(np.float32).reshape(n, k_blocks, -1)  # [N, k_blocks, block]
    if weight.zero_points is None:
        zero_points = np.full((n, k_blocks), 2 ** (BITS - 1), dtype=np.float32)
    else:
        zero_points = _nibbles(weight.zero_points, n)[:, :k_blocks].astype(np.float32)
    scales = weight.scales.astype(np.float32)
    rows = (values - zero_points[:, :, None]) * scales[:, :, None]  # [N, k_blocks, block]
    return rows.reshape(n, -1)[:, :k].T.astype(weight.scales.dtype)


def fake_quantize_module(
    module: torch.nn.Module, *, block_size: int = 32, symmetric: bool = False, quantize_embedding: bool = True
) -> None:
    """Give a PyTorch model, in place, the weights a q4 graph computes with (the int4 round trip).

    Every `nn.Linear` weight and, with `quantize_embedding`, the `nn.Embedding` table: the same
    set the pass quantizes in the traced graph. A tied head is its embedding's parameter, so it
    is rounded once, and stays float with the table when `quantize_embedding` is False. Used to
    check an int4 graph against PyTorch without the quantization error itself.
    """
    embeddings = {id(m.weight) for m in module.modules() if isinstance(m, torch.nn.Embedding)}
    done: set[int] = set()
    with torch.no_grad():
        for sub in module.modules():
            if not isinstance(sub, torch.nn.Linear | torch.nn.Embedding) or id(sub.weight) in done:
                continue
            if id(sub.weight) in embeddings and not quantize_embedding:
                continue
            done.add(id(sub.weight))
            rows = sub.weight.detach().cpu().numpy()  # [N, K] (Linear) or [V, D] (Embedding)
            quantized = block_quantize(rows.T, block_size, symmetric)
            sub.weight.copy_(torch.from_numpy(np.ascontiguousarray(dequantize(quantized, rows.shape[1]).T)))


def constant_array(value: ir.Value) -> np.ndarray:
    """An initializer's tensor as numpy (a view of the traced weights where possible)."""
    assert value.const_value is not None, f"{value.name} is not a constant"
    return value.const_value.numpy()


@dataclass(frozen=True)
class QuantizedInitializers:
    """A QuantizedWeight registered in the graph; several nodes may read the same values."""

    packed: ir.Value
    scales: ir.Value
    zero_points: ir.Value | None


def register_quantized(graph: ir.Graph, base_name: str, weight: QuantizedWeight) -> QuantizedInitializers:
    zero_points = None
    if weight.zero_points is not None:
        zero_points = add_initializer(graph, f"{base_name}.q4_zero_points", weight.zero_points)
    return QuantizedInitializers(
        packed=add_initializer(graph, f"{base_name}.q4", weight.packed),
        scales=add_initializer(graph, f"{base_name}.q4_scales", weight.scales),
        zero_points=zero_points,
    )


def matmul_nbits_node(
    activations: ir.Value,
    weight: QuantizedInitializers,
    k: int,
    n: int,
    settings: QuantizeSettings,
    name: str,
) -> ir.Node:
    """activations [..., K] x int4 weight [K, N] -> [..., N]."""
    inputs = [activations, weight.packed, weight.scales]
    if weight.zero_points is not None:
        inputs.append(weight.zero_points)
    attributes = {"K": k, "N": n, "bits": BITS, "block_size": settings.block_size}
    if settings.accuracy_level:
        # Left out when 0, as onnxruntime's quantizer does: some EPs reject the attribute.
        attributes["accuracy_level"] = settings.accuracy_level
    return ir.node("MatMulNBits", inputs, attributes, domain=MS_DOMAIN, name=name)


def drop_unused_initializer(graph: ir.Graph, value: ir.Value) -> None:
    """Remove a float initializer nobody reads any more, so its memory can go."""
    if value.name and value.name in graph.initializers and not value.uses() and not value.is_graph_output():
        del graph.initializers[value.name]


def check_float_type(value: ir.Value, settings: QuantizeSettings) -> None:
    if value.dtype != settings.float_type:
        wanted = "fp16 (q4f16: trace in fp16)" if settings.fp16_scales else "fp32 (q4: trace in fp32)"
        raise ValueError(
            f"weight {value.name!r} is {value.dtype}; fp16_scales={settings.fp16_scales} needs {wanted}"
        )


def constant_weight(
    node: ir.Node, dtypes: tuple[ir.DataType, ...] = tuple(_FLOAT_TYPES.values())
) -> ir.Value | None:
    """The MatMul's right operand if it is a 2-D initializer [K, N] of one of `dtypes`."""
    if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return None
    weight = node.inputs[1]
    if weight is None or not weight.is_initializer() or weight.const_value is None:
        return None
    if weight.dtype not in dtypes or len(weight.const_value.shape) != 2:
        return None
    return weight


def quantize_matmuls(graph: ir.Graph, settings: QuantizeSettings) -> tuple[int, int, int]:
    """Replace every MatMul with a constant 2-D weight; returns (count, float bytes, int4 bytes)."""
    done: dict[str, QuantizedInitializers] = {}  # a weight shared by several MatMuls: quantize once
    count = float_bytes = quantized_bytes = 0
    for node in [n for n in graph if constant_weight(n) is not None]:
        weight, activations = constant_weight(node), node.inputs[0]
        assert weight is not None and weight.name is not None and activations is not None
        check_float_type(weight, settings)
        array = constant_array(weight)  # [K, N]
        if weight.name not in done:
            quantized = block_quantize(array, settings.block_size, settings.symmetric)
            done[weight.name] = register_quantized(graph, weight.name, quantized)
            float_bytes += array.nbytes
            quantized_bytes += quantized.nbytes()
        k, n = array.shape
        new = matmul_nbits_node(activations, done[weight.name], k, n, settings, f"{node.name}_q4")
        del array
        ir.convenience.replace_nodes_and_values(
            graph, node, [node], [new], list(node.outputs), list(new.outputs)
        )
        drop_unused_initializer(graph, weight)
        count += 1
    return count, float_bytes, quantized_bytes


def _check_settings(block_size: int, accuracy_level: int) -> None:
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of 2 and at least 16, got {block_size}")
    if accuracy_level not in ACCURACY_LEVELS:
        raise ValueError(f"accuracy_level must be one of {ACCURACY_LEVELS}, got {accuracy_level}")


def quantize_weights(
    model: ir.Model,
    *,
    block_size: int = 32,
    accuracy_level: int = 4,
    fp16_scales: bool,
    quantize_embedding: bool = True,
    symmetric: bool = False,
) -> ir.Model:
    """Quantize the model's MatMul weights (and the embedding table) to int4, in place; returns it.

    `fp16_scales` must match the graph's float type (True for a graph traced in fp16). With
    `quantize_embedding=False` the embedding table and a tied LM head that reads it stay float
    (an int4 LM head is slow on ORT-web wasm). `symmetric` drops the zero points (weight = scale *
    (q - 8)); the default, asymmetric, is onnxruntime's default and the more accurate.
    """
    from qwen35web.export.passes.quantize_embedding import quantize_embedding_table

    _check_settings(block_size, accuracy_level)
    settings = QuantizeSettings(block_size, accuracy_level, symmetric, fp16_scales)
    graph = model.graph
    if quantize_embedding:
        quantize_embedding_table(graph, settings)
    count, float_bytes, quantized_bytes = quantize_matmuls(graph, settings)
    model.opset_imports[MS_DOMAIN] = 1
    log.info(
        "quantized %d MatMul weights to int4 (block %d): %.1f MB -> %.1f MB",
        count,
        block_size,
        float_bytes / 1e6,
        quantized_bytes / 1e6,
    )
    return model
