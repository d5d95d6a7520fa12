"""The Qwen3.5 text decoder in plain torch, written for export (nanoGPT-sized, HF-compatible names).

Parameter names match transformers' `Qwen3_5ForCausalLM` state dict (after the layout prefix), so
a checkpoint loads tensor by tensor. State travels as explicit tensors in and out of `forward`
(no cache object), which is exactly the ONNX graph's I/O. The delta-rule scan and the causal conv
are the project's custom ops, so the exported graph has one node for each instead of a traced loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qwen35web.export.ops.causal_conv import causal_conv1d_with_state
from qwen35web.export.ops.gated_delta_rule import gated_delta_rule
from qwen35web.runtime.bundle_format import ModelFacts
from qwen35web.runtime.graph_io import LINEAR_ATTENTION


class ZeroCenteredRMSNorm(nn.Module):
    """RMSNorm with weight stored as an offset from one: y = x/rms(x) * (1 + w), computed in fp32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (1.0 + self.weight.float())).type_as(x)


class GatedRMSNorm(nn.Module):
    """Per-head output norm of the delta-rule layer: w * rmsnorm(o) * silu(z)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, o: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        o32 = o.float()
        normed = o32 * torch.rsqrt(o32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * normed.to(o.dtype) * F.silu(z.float())).to(o.dtype)


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True) + eps)


class GatedDeltaNet(nn.Module):
    def __init__(self, spec: ModelFacts):
        super().__init__()
        self.num_k_heads, self.num_v_heads = spec.linear_num_key_heads, spec.linear_num_value_heads
        self.head_k_dim, self.head_v_dim = spec.linear_key_head_dim, spec.linear_value_head_dim
        self.key_dim = self.num_k_heads * self.head_k_dim
        self.value_dim = self.num_v_heads * self.head_v_dim
        conv_dim = spec.conv_dim
        hidden = spec.hidden_size
        self.in_proj_qkv = nn.Linear(hidden, conv_dim, bias=False)
        self.in_proj_z = nn.Linear(hidden, self.value_dim, bias=False)
        self.in_proj_b = nn.Linear(hidden, self.num_v_heads, bias=False)
        self.in_proj_a = nn.Linear(hidden, self.num_v_heads, bias=False)
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, spec.conv_kernel, groups=conv_dim, bias=False)
        self.dt_bias = nn.Parameter(torch.ones(self.num_v_heads))
        self.A_log = nn.Parameter(torch.zeros(self.num_v_heads))
        self.norm = GatedRMSNorm(self.head_v_dim, spec.rms_norm_eps)
        self.out_proj = nn.Linear(self.value_dim, hidden, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        token_mask: torch.Tensor,
        conv_state: torch.Tensor,
        recurrent_state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, seq, _ = x.shape
        # Padding positions must not leak into the recurrent state.
        x = x * token_mask.unsqueeze(-1)  # [B, T, D]
        mixed = self.in_proj_qkv(x).transpose(1, 2)  # [B, C, T]
        mixed, conv_state = causal_conv1d_with_state(mixed, self.conv1d.weight, conv_state)
        query, key, value = torch.split(
            mixed.transpose(1, 2), [self.key_dim, self.key_dim, self.value_dim], -1
        )
        query = l2_normalize(query.reshape(batch, seq, self.num_k_heads, self.head_k_dim).float())
        key = l2_normalize(key.reshape(batch, seq, self.num_k_heads, self.head_k_dim).float())
        value = value.reshape(batch, seq, self.num_v_heads, self.head_v_dim)
        beta = self.in_proj_b(x).sigmoid()  # [B, T, Hv]
        # Log-space decay, kept in fp32 (exp(A_log) overflows fp16).
        g = -self.A_log.float().exp() * F.softplus(self.in_proj_a(x).float() + self.dt_bias)  # [B, T, Hv]
        core, recurrent_state = gated_delta_rule(
            query, key, value, g, beta, recurrent_state, scale=self.head_k_dim**-0.5
        )  # [B, T, Hv, Dv]
        z = self.in_proj_z(x).reshape(batch, seq, self.num_v_heads, self.head_v_dim)
        core = self.norm(core, z).reshape(batch, seq, self.value_dim)
        return self.out_proj(core), conv_state, recurrent_state


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    """Gated full attention: GQA with q/k RMSNorm, partial rotary, output gated by sigmoid(gate)."""

    def __init__(self, spec: ModelFacts):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = (
            spec.num_attention_heads,
            spec.num_key_value_heads,
            spec.head_dim,
        )
        hidden = spec.hidden_size
        self.q_proj = nn.Linear(hidden, self.num_heads * self.head_dim * 2, bias=False)
        self.k_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, hidden, bias=False)
        self.q_norm = ZeroCenteredRMSNorm(self.head_dim, spec.rms_norm_eps)
        self.k_norm = ZeroCenteredRMSNorm(self.head_dim, spec.rms_norm_eps)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        rot = cos.shape[-1]
        x_rot, x_pass = x[..., :rot], x[..., rot:]
        return torch.cat((x_rot * cos + rotate_half(x_rot) * sin, x_pass), dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        attn_bias: torch.Tensor,
        past_key: torch.Tensor,
        past_value: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, seq, _ = x.shape
        # q_proj interleaves query and gate per head: [B, T, H, 2 * hd].
        query, gate = self.q_proj(x).view(batch, seq, self.num_heads, 2 * self.head_dim).chunk(2, dim=-1)
        gate = gate.reshape(batch, seq, self.num_heads * self.head_dim)
        query = self.q_norm(query).transpose(1, 2)  # [B, H, T, hd]
        key = self.k_norm(self.k_proj(x).view(batch, seq, self.num_kv_heads, self.head_dim)).transpose(1, 2)
        value = self.v_proj(x).view(batch, seq, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope  # [B, 1, T, rot]
        query, key = self._rotate(query, cos, sin), self._rotate(key, cos, sin)
        key = torch.cat((past_key, key), dim=2)  # [B, Hkv, P+T, hd]
        value = torch.cat((past_value, value), dim=2)
        groups = self.num_heads // self.num_kv_heads
        scores = query @ key.repeat_interleave(groups, dim=1).transpose(2, 3) * self.head_dim**-0.5
        probs = torch.softmax(scores.float() + attn_bias, dim=-1).to(value.dtype)  # [B, H, T, P+T]
        out = (probs @ value.repeat_interleave(groups, dim=1)).transpose(1, 2).reshape(batch, seq, -1)
        return self.o_proj(out * torch.sigmoid(gate)), key, value


class MLP(nn.Module):
    def __init__(self, spec: ModelFacts):
        super().__init__()
        self.gate_proj = nn.Linear(spec.hidden_size, spec.intermediate_size, bias=False)
        self.up_proj = nn.Linear(spec.hidden_size, spec.intermediate_size, bias=False)
        self.down_proj = nn.Linear(spec.intermediate_size, spec.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, spec: ModelFacts, layer_type: str):
        super().__init__()
        self.is_linear = layer_type == LINEAR_ATTENTION
        if self.is_linear:
            self.linear_attn = GatedDeltaNet(spec)
        else:
            self.self_attn = Attention(spec)
        self.mlp = MLP(spec)
        self.input_layernorm = ZeroCenteredRMSNorm(spec.hidden_size, spec.rms_norm_eps)
        self.post_attention_layernorm = ZeroCenteredRMSNorm(spec.hidden_size, spec.rms_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        token_mask: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        attn_bias: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        normed = self.input_layernorm(x)
        if self.is_linear:
            mixed, *new_state = self.linear_attn(normed, token_mask, *state)
        else:
            mixed, *new_state = self.self_attn(normed, rope, attn_bias, *state)
        x = x + mixed
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, (new_state[0], new_state[1])
