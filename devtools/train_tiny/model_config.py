"""The tiny model's architecture: Qwen3.5's layer pattern and head structure at a width a CPU can train.

Sized so the fp32 checkpoint stays under 15 MB (about 3.55 M parameters, a quarter of them the
tied embedding) and so that a few hundred steps fit in 25 minutes on two cores.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers import Qwen3_5ForCausalLM

# Three Gated DeltaNet layers then one full-attention layer, twice, as in every Qwen3.5 size.
LAYER_TYPES = ["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 3 + ["full_attention"]

TINY_QWEN35_CONFIG: dict[str, Any] = {
    "model_type": "qwen3_5_text",
    "architectures": ["Qwen3_5ForCausalLM"],
    "vocab_size": 4096,
    "hidden_size": 192,
    "intermediate_size": 384,
    "num_hidden_layers": len(LAYER_TYPES),
    "layer_types": LAYER_TYPES,
    # Full attention: GQA 4 query heads over 2 key/value heads, each query head with its output gate.
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    # Gated DeltaNet: each key head serves two value heads (Hv = 2·Hk, as in Qwen3.5-4B/9B).
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 32,
    "linear_value_head_dim": 32,
    "linear_conv_kernel_dim": 4,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "initializer_range": 0.02,
    "max_position_embeddings": 4096,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000000.0,
        # 25 % of head_dim 64 = 16 rotary dims; the interleaved MRoPE sections split its 8 frequencies.
        "partial_rotary_factor": 0.25,
        "mrope_section": [3, 3, 2],
        "mrope_interleaved": True,
    },
    "tie_word_embeddings": True,
    "bos_token_id": None,
}


def tiny_config(vocab_size: int, special_ids: dict[str, int], **overrides: Any) -> dict[str, Any]:
    """The config for a tokenizer's vocabulary; the end of a turn and of a document both stop generation."""
    config = copy.deepcopy(TINY_QWEN35_CONFIG)
    config.update(overrides)
    config["vocab_size"] = vocab_size
    config["eos_token_id"] = [special_ids["<|im_end|>"], special_ids["<|endoftext|>"]]
    config["pad_token_id"] = special_ids["<|endoftext|>"]
    return config


def build_model(config: dict[str, Any], seed: int) -> Qwen3_5ForCausalLM:
    """transformers' own Qwen3_5ForCausalLM, initialised from `seed` (zero-centred norms start at w = 0)."""
    from transformers import Qwen3_5TextConfig

    torch.manual_seed(seed)
    return Qwen3_5ForCausalLM(Qwen3_5TextConfig(**config))


def parameter_count(model: torch.nn.Module) -> int:
    """Distinct parameters (the tied LM head counted once)."""
    return sum(p.numel() for p in model.parameters())
