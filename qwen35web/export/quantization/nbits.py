"""MatMulNBits' block layout (4 or 8 bits), computed with onnxruntime's own quantizer kernel.

A weight [K, N] is quantized in blocks of `block_size` along K: per output feature n and block b,
one scale and (unless symmetric) one zero point, weight ~= scale * (q - zero_point). The layout is
MatMulNBits' (and, row for row, GatherBlockQuantized's for data quantized along its last axis):

    packed       uint8 [N, k_blocks, block_size * bits / 8]   4 bits: element 2i in the low nibble
    scales       float [N, k_blocks]                           the activations' dtype
    zero_points  uint8 [N, ceil(k_blocks * bits / 8)]          4 bits: two blocks per byte

The block quantization itself is onnxruntime's (`DefaultWeightOnlyQuantizer.qbits_block_quant`,
its C++ kernel), so the packing is exactly what the kernels expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnxruntime.quantization.matmul_nbits_quantizer import (
    DefaultWeightOnlyQuantConfig,
    DefaultWeightOnlyQuantizer,
)

BITS = (4, 8)  # what MatMulNBits and GatherBlockQuantized both read (and onnxruntime-web's WebGPU EP)
# A block format's choices for the token table and LM head: bits, or None to leave them float.
EMBEDDING_BITS: dict[str, int | None] = {"int4": 4, "int8": 8, "float": None}
ACCURACY_LEVELS = (0, 1, 2, 3, 4)  # MatMulNBits: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 compute
# Weights are quantized in column slabs of at most this many elements (64 MB of fp32): ORT's
# kernel needs a C-contiguous [K, N] buffer, and a slab bounds the copy that makes one.
SLAB_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class QuantizedWeight:
    """One weight [K, N] in MatMulNBits' layout: output features first, K packed in blocks."""

    packed: np.ndarray  # uint8 [N, k_blocks, block_size * bits / 8]
    scales: np.ndarray  # float [N, k_blocks], the activations' dtype
    zero_points: np.ndarray | None  # uint8 [N, ceil(k_blocks * bits / 8)]; None: 2^(bits - 1)
    bits: int

    def nbytes(self) -> int:
        extra = 0 if self.zero_points is None else self.zero_points.nbytes
        return self.packed.nbytes + self.scales.nbytes + extra


def check_settings(block_size: int, accuracy_level: int) -> None:
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of 2 and at least 16, got {block_size}")
    if accuracy_level not in ACCURACY_LEVELS:
        raise ValueError(f"accuracy_level must be one of {ACCURACY_LEVELS}, got {accuracy_level}")


def block_quantize(weight_kn: np.ndarray, block_size: int, symmetric: bool, bits: int = 4) -> QuantizedWeight:
    """Quantize weight [K, N] (fp32 or fp16; any strides) blockwise along K with onnxruntime's kernel."""
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits}")
    k, n = weight_kn.shape
    k_blocks = -(-k // block_size)
    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=symmetric, bits=bits)
    quantizer = DefaultWeightOnlyQuantizer(config)
    packed = np.empty((n, k_blocks, block_size * bits // 8), dtype=np.uint8)
    scales = np.empty((n, k_blocks), dtype=weight_kn.dtype)
    zero_points = np.empty((n, -(-k_blocks * bits // 8)), dtype=np.uint8)
    step = max(1, SLAB_ELEMENTS // k)
    for start in range(0, n, step):
        # The kernel reads the buffer as C-contiguous and silently ignores strides (a transposed
        # view gives wrong numbers, no error), so each slab is copied contiguous first.
        slab = np.ascontiguousarray(weight_kn[:, start : start + step])  # [K, n_slab]
        slab_packed, slab_scales, slab_zero_points = quantizer.qbits_block_quant(slab)
        packed[start : start + step] = slab_packed
        scales[start : start + step] = slab_scales
        zero_points[start : start + step] = slab_zero_points
    return QuantizedWeight(packed, scales, None if symmetric else zero_points, bits)


def _values(packed: np.ndarray, rows: int, bits: int) -> np.ndarray:
    """uint8 [rows, ...] -> the `bits`-bit values [rows, count], low nibble first for 4 bits."""
    flat = packed.reshape(rows, -1)
    if bits == 8:
        return flat
    return np.stack([flat & 0xF, flat >> 4], axis=-1).reshape(rows, -1)


def dequantize(weight: QuantizedWeight, k: int) -> np.ndarray:
    """The float weight [K, N] that MatMulNBits computes with: scale * (q - zero_point), per block.

    The numpy statement of the layout; tests and references use it.
    """
    n, k_blocks = weight.scales.shape
    bits = weight.bits
    values = (
        _values(weight.packed, n, bits).astype(np.float32).reshape(n, k_blocks, -1)
    )  # [N, k_blocks, block]
    if weight.zero_points is None:
        zero_points = np.full((n, k_blocks), 2 ** (bits - 1), dtype=np.float32)
    else:
        zero_points = _values(weight.zero_points, n, bits)[:, :k_blocks].astype(np.float32)
    scales = weight.scales.astype(np.float32)
    rows = (values - zero_points[:, :, None]) * scales[:, :, None]  # [N, k_blocks, block]
    return rows.reshape(n, -1)[:, :k].T.astype(weight.scales.dtype)
