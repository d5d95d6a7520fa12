"""The Qwen3.5 vision tower in plain PyTorch, written to be traced into one dynamic ONNX graph.

Parameter names are transformers' `Qwen3_5VisionModel` state-dict names (the checkpoint's
`model.visual.*` without the prefix), so its weights load as they are. What differs from
transformers is only how the per-image work is expressed: the grid facts come from
`vision.grid` (tensor arithmetic, no Python loop over images), and attention runs over blocks of
queries (`vision.attention`, memory linear in the patches) restricted to each frame by the
patches' segment ids, where transformers splits the sequence per frame.

    pixel_values float32 [N, C*T*P*P], image_grid_thw int64 [I, 3] -> image_features [N / m^2, text hidden]
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qwen35web.export.vision import grid
from qwen35web.export.vision.attention import TORCH_OP as VISION_ATTENTION
from qwen35web.export.vision.config import VisionSpec

LAYER_NORM_EPS = 1e-6


def _activation(name: str) -> nn.Module:
    """transformers' ACT2FN entry of this name, as a module torch.onnx exports as-is."""
    if name in ("gelu_pytorch_tanh", "gelu_new"):
        return nn.GELU(approximate="tanh")
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    if name == "quick_gelu":
        return _QuickGelu()
    raise ValueError(f"unsupported activation {name!r}")


class _QuickGelu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class PatchEmbed(nn.Module):
    """Conv3d with stride = kernel over (T, P, P) is one matmul per patch row; kept as a Conv3d's weight."""

    def __init__(self, spec: VisionSpec):
        super().__init__()
        kernel = (spec.temporal_patch_size, spec.patch_size, spec.patch_size)
        self.proj = nn.Conv3d(
            spec.in_channels, spec.hidden_size, kernel_size=kernel, stride=kernel, bias=True
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        weight = self.proj.weight.reshape(self.proj.out_channels, -1)  # [E, C*T*P*P], same flattening
        bias = self.proj.bias
        assert bias is not None
        return pixel_values.to(weight.dtype) @ weight.T + bias  # [N, E]


class VisionMlp(nn.Module):
    def __init__(self, spec: VisionSpec):
        super().__init__()
        self.linear_fc1 = nn.Linear(spec.hidden_size, spec.intermediate_size, bias=True)
        self.linear_fc2 = nn.Linear(spec.intermediate_size, spec.hidden_size, bias=True)
        self.act_fn = _activation(spec.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_fc2(self.act_fn(self.linear_fc1(x)))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class VisionAttention(nn.Module):
    def __init__(self, spec: VisionSpec):
        super().__init__()
        self.num_heads = spec.num_heads
        self.head_dim = spec.head_dim
        self.qkv = nn.Linear(spec.hidden_size, 3 * spec.hidden_size, bias=True)
        self.proj = nn.Linear(spec.hidden_size, spec.hidden_size, bias=True)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, segment: torch.Tensor
    ) -> torch.Tensor:
        """x [N, E]; cos, sin float32 [N, 1, D]; segment int64 [N] (a frame per patch)."""
        n = x.shape[0]
        qkv = self.qkv(x).reshape(n, 3, self.num_heads, self.head_dim).permute(1, 0, 2, 3)  # [3, N, H, D]
        q, k, v = qkv[0], qkv[1], qkv[2]
        # The rotary runs in fp32 whatever the graph's dtype, as transformers' does.
        q = (q.float() * cos + _rotate_half(q.float()) * sin).to(x.dtype)
        k = (k.float() * cos + _rotate_half(k.float()) * sin).to(x.dtype)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [H, N, D]
        q = q * (1.0 / math.sqrt(self.head_dim))
        return self.proj(VISION_ATTENTION(q, k, v, segment))  # [N, E]


class VisionBlock(nn.Module):
    def __init__(self, spec: VisionSpec):
        super().__init__()
        self.norm1 = nn.LayerNorm(spec.hidden_size, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(spec.hidden_size, eps=LAYER_NORM_EPS)
        self.attn = VisionAttention(spec)
        self.mlp = VisionMlp(spec)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, segment: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin, segment)
        return x + self.mlp(self.norm2(x))


class PatchMerger(nn.Module):
    """LayerNorm per patch, then each m x m block's patches side by side into one MLP (exact GELU)."""

    def __init__(self, spec: VisionSpec):
        super().__init__()
        self.merged_size = spec.hidden_size * spec.merge_unit
        self.norm = nn.LayerNorm(spec.hidden_size, eps=LAYER_NORM_EPS)
        self.linear_fc1 = nn.Linear(self.merged_size, self.merged_size)
        self.act_fn = nn.GELU()
        self.linear_fc2 = nn.Linear(self.merged_size, spec.out_hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x).reshape(-1, self.merged_size)  # [N / m^2, E * m^2]
        return self.linear_fc2(self.act_fn(self.linear_fc1(x)))


class VisionTower(nn.Module):
    """pixel_values [N, C*T*P*P] (any float), image_grid_thw int64 [I, 3] -> float32 [N / m^2, out]."""

    def __init__(self, spec: VisionSpec):
        super().__init__()
        self.spec = spec
        self.patch_embed = PatchEmbed(spec)
        self.pos_embed = nn.Embedding(spec.num_position_embeddings, spec.hidden_size)
        self.blocks = nn.ModuleList([VisionBlock(spec) for _ in range(spec.depth)])
        self.merger = PatchMerger(spec)

    def forward(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        layout = grid.patch_layout(image_grid_thw, pixel_values.shape[0], spec.spatial_merge_size)
        x = self.patch_embed(pixel_values)  # [N, E]
        indices, weights = grid.interpolation_taps(layout, spec.grid_side)  # [N, 4] each
        positions = (self.pos_embed(indices).float() * weights[:, :, None]).sum(dim=1)  # [N, E]
        x = x + positions.to(x.dtype)
        # Computed here, not held as a buffer, so that `.half()` cannot round the frequencies.
        inverse_frequencies = grid.rotary_inverse_frequencies(spec.head_dim, spec.rope_theta)
        cos, sin = grid.rotary_cos_sin(layout, inverse_frequencies.to(x.device))  # [N, D] float32
        cos, sin = cos[:, None, :], sin[:, None, :]  # broadcast over heads
        for block in self.blocks:
            x = block(x, cos, sin, layout.segment)
        return self.merger(x).float()
