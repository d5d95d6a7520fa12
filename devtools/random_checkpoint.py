"""Seeded random Qwen3.5 checkpoints: the tests' models, the demo's default until a trained one
exists, and random-weight models of the real shapes for benchmarks.

Nothing is downloaded: the model is transformers' own class with random weights, and the
tokenizer is a byte-level BPE trained here on Python's own docstrings.

    python -m devtools.random_checkpoint OUT_DIR [--config JSON] [--seed N] [--layout text|vl]
        [--vision-config JSON] [--streamed]

`--streamed` (text layout) draws the tensors one by one into bf16 shards (devtools.random_streamed):
the way to make the 4B and 9B shapes on a machine that cannot hold them in fp32.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from devtools.byte_tokenizer import VISION_TOKEN_IDS, write_tokenizer
from devtools.random_streamed import write_streamed_checkpoint

TINY_TEXT_CONFIG: dict[str, Any] = {
    "model_type": "qwen3_5_text",
    "architectures": ["Qwen3_5ForCausalLM"],
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 24,
    "linear_conv_kernel_dim": 4,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 4096,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000000.0,
        "partial_rotary_factor": 0.25,
        "mrope_section": [2, 1, 1],
        "mrope_interleaved": True,
    },
    "tie_word_embeddings": True,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "bos_token_id": None,
}


# A small real tower (transformers' Qwen3_5VisionModel) for the vl layout; `out_hidden_size` is
# always the text width. Tests pass other shapes (depth, width, heads, merge and patch size).
TINY_VISION_CONFIG: dict[str, Any] = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_heads": 2,
    "hidden_act": "gelu_pytorch_tanh",
    "in_channels": 3,
    "patch_size": 4,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "num_position_embeddings": 64,
}
# Qwen3-VL's image processor settings (mean/std 0.5, bicubic); the pixel limits scale with the
# tower's patch x merge factor so test images stay small: 4 to 256 merged tokens per image.
_MIN_TOKENS, _MAX_TOKENS = 4, 256


def random_model(config: dict[str, Any], seed: int = 0):
    """transformers' Qwen3_5ForCausalLM with seeded random weights; zero-centred norms perturbed."""
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    torch.manual_seed(seed)
    model = Qwen3_5ForCausalLM(Qwen3_5TextConfig(**config)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            # Random init leaves (1 + w) norms at w = 0; perturb so the offset is exercised.
            if name.endswith("norm.weight"):
                param.add_(torch.randn_like(param) * 0.1)
    return model


def write_text_checkpoint(
    out_dir: Path, config: dict[str, Any] | None = None, seed: int = 0, shard_size: str | None = None
) -> Path:
    """Qwen3_5ForCausalLM layout (`model.*`), optionally sharded with an index."""
    config = copy.deepcopy(config or TINY_TEXT_CONFIG)
    model = random_model(config, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    kwargs = {"max_shard_size": shard_size} if shard_size else {}
    model.save_pretrained(out_dir, **kwargs)
    write_tokenizer(out_dir)
    return out_dir


def random_vision_model(vision: dict[str, Any], out_hidden_size: int, seed: int = 0):
    """transformers' Qwen3_5VisionModel with seeded random weights; biases and norms perturbed."""
    from transformers import Qwen3_5VisionConfig
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5VisionModel

    torch.manual_seed(seed)
    config = Qwen3_5VisionConfig(**{**vision, "out_hidden_size": out_hidden_size})
    model = Qwen3_5VisionModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            # Init leaves biases at 0 and LayerNorms at (1, 0): perturb so every term is exercised.
            if name.endswith("bias") or "norm" in name:
                param.add_(torch.randn_like(param) * 0.05)
    return model


def preprocessor_config(vision: dict[str, Any]) -> dict[str, Any]:
    """A Qwen2-VL image processor config (Qwen3-VL's settings) matching the tower's patching."""
    factor = vision["patch_size"] * vision["spatial_merge_size"]
    return {
        "image_processor_type": "Qwen2VLImageProcessor",
        "do_resize": True,
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": True,
        "patch_size": vision["patch_size"],
        "temporal_patch_size": vision["temporal_patch_size"],
        "merge_size": vision["spatial_merge_size"],
        "size": {"shortest_edge": _MIN_TOKENS * factor**2, "longest_edge": _MAX_TOKENS * factor**2},
    }


def write_vl_checkpoint(
    out_dir: Path,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    vision_config: dict[str, Any] | None = None,
) -> Path:
    """Qwen3_5ForConditionalGeneration layout: text under `model.language_model.*`, a real random
    vision tower under `model.visual.*` (seed + 1, so the text weights match `random_model(seed)`),
    and the image processor's preprocessor_config.json."""
    from safetensors.torch import save_file

    text = copy.deepcopy(config or TINY_TEXT_CONFIG)
    vision = {**TINY_VISION_CONFIG, **(vision_config or {})}
    model = random_model(text, seed)
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and text["tie_word_embeddings"]:
            continue
        key = "model.language_model." + name.removeprefix("model.") if name.startswith("model.") else name
        tensors[key] = tensor.contiguous().clone()
    tower = random_vision_model(vision, text["hidden_size"], seed + 1)
    for name, tensor in tower.state_dict().items():
        tensors["model.visual." + name] = tensor.contiguous().clone()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    text_config = {k: v for k, v in text.items() if k not in ("architectures",)}
    vl_config = {
        "model_type": "qwen3_5",
        "architectures": ["Qwen3_5ForConditionalGeneration"],
        "text_config": text_config,
        "vision_config": {"model_type": "qwen3_5_vision", **vision, "out_hidden_size": text["hidden_size"]},
        "tie_word_embeddings": text["tie_word_embeddings"],
        **VISION_TOKEN_IDS,
    }
    (out_dir / "config.json").write_text(json.dumps(vl_config, indent=2))
    (out_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(vision), indent=2))
    write_tokenizer(out_dir, vision=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devtools.random_checkpoint")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--config", type=Path, default=None, help="text config JSON (default: the tiny one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=["text", "vl"], default="text")
    parser.add_argument("--vision-config", type=Path, default=None, help="vision config JSON (vl layout)")
    parser.add_argument("--streamed", action="store_true", help="bf16 shards, one tensor at a time (text)")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text()) if args.config else None
    if config is not None:
        config.pop("torch_dtype", None)
    if args.streamed:
        write_streamed_checkpoint(args.out_dir, config or TINY_TEXT_CONFIG, seed=args.seed)
        return 0
    if args.layout == "text":
        write_text_checkpoint(args.out_dir, config, seed=args.seed)
        return 0
    vision = json.loads(args.vision_config.read_text()) if args.vision_config else None
    write_vl_checkpoint(args.out_dir, config, seed=args.seed, vision_config=vision)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
