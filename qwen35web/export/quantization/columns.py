"""DynamicQuantizeMatMul's int8 layout (`--dtype q8`): one symmetric scale per output column.

A weight [K, N] becomes int8 [K, N] and fp32 scales [N] with weight ~= q * scale (zero point 0);
the kernel quantizes its input per tensor to uint8 at run time (`quantize_activations` states how).
The rounding is one line of numpy, written here with the layout.
"""

from __future__ import annotations

import numpy as np
import torch

# 7-bit magnitudes: onnxruntime's x64 kernel for CPUs without VNNI (AVX2 only, e.g. AMD EPYC) multiplies
# uint8 activations by int8 weights with VPMADDUBSW, which saturates each pair sum to int16. |q| <= 63
# keeps 255 * 63 * 2 = 32,130 below 32,767, so the product is exact on every CPU; with |q| <= 127 a random
# [8, 256] x [256, 64] product was off by a quarter of its range there (symmetric: -q never overflows).
QMAX = 63
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
