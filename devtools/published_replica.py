"""Replicas of the published Qwen3.5 repositories (issue 19): every file laid out as the Hub's
Qwen/Qwen3.5-0.8B and Qwen/Qwen3.5-4B are, at tiny dimensions with seeded random weights.

    python -m devtools.published_replica OUT_DIR [--layout 0.8b|4b] [--seed N] [--ends-turns]

What is published, and kept here (the facts are the issue's):
- config.json: `Qwen3_5ForConditionalGeneration`, model_type `qwen3_5`, the vision token ids at the
  top, `text_config` (model_type `qwen3_5_text`, `dtype` not `torch_dtype`, explicit `layer_types`,
  the MTP fields, `rope_parameters` with an integer rope_theta), `vision_config` (model_type
  `qwen3_5`); eos 248044 in text_config only, no pad id anywhere.
- weights in bf16 under the published shard names (`model.safetensors-0000i-of-0000n.safetensors`,
  one for the 0.8B, two for the 4B) with `model.safetensors.index.json`: `model.language_model.*`,
  `model.visual.*`, one MTP layer (`mtp.*`), no `lm_head.weight` (both layouts tie it).
- the real vocabulary (devtools.real_vocab) as tokenizer.json, vocab.json and merges.txt;
  tokenizer_config.json with eos `<|im_end|>` and no pad; both processor configs with the
  published size dicts; `chat_template.jinja` (devtools.replica_template: the 0.8B's small-model
  thinking default, the 4B's large-model one); no generation_config.json.
What is not: the dimensions (hidden 32: the 248,320-row embedding stays ~8M parameters) and the
weights. The head and attention dimensions are the published ones (256, 128), and the 4B layout
keeps its two value heads per key head.

`ends_turns` tweaks the (tied) embedding so that the model emits `<|im_end|>` within a few steps
(`end_turns`): a seeded random model would almost never pick that one id of 248,320, and the stop
tests need a model that ends its turn, as a real one does.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from devtools.real_vocab import real_tokenizer_json
from devtools.replica_template import chat_template

ENDOFTEXT_ID, IM_START_ID, IM_END_ID = 248044, 248045, 248046
VOCAB_SIZE = 248320  # the published embedding rows (the tokenizer has 248,077 ids; the rest is padding)
VISION_TOKEN_IDS = {
    "image_token_id": 248056,
    "video_token_id": 248057,
    "vision_start_token_id": 248053,
    "vision_end_token_id": 248054,
}
INDEX_FILE = "model.safetensors.index.json"


@dataclass(frozen=True)
class Layout:
    """What tells the published repositories apart, at replica scale."""

    name: str
    linear_num_value_heads: int  # 0.8B: one value head per key head; 4B: two
    thinking: str  # the chat template's thinking default: replica_template variant
    shards: int


LAYOUTS = {
    "0.8b": Layout("0.8b", linear_num_value_heads=2, thinking="small", shards=1),
    "4b": Layout("4b", linear_num_value_heads=4, thinking="large", shards=2),
}


def text_config(layout: Layout) -> dict[str, Any]:
    """text_config as published (field for field), at replica dimensions."""
    layer_types = ["linear_attention", "linear_attention", "linear_attention", "full_attention"]
    return {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_output_gate": True,
        "dtype": "bfloat16",
        "eos_token_id": ENDOFTEXT_ID,
        "full_attention_interval": 4,
        "head_dim": 256,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_types": layer_types,
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 128,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": layout.linear_num_value_heads,
        "linear_value_head_dim": 128,
        "mamba_ssm_dtype": "float32",
        "max_position_embeddings": 262144,
        "mlp_only_layers": [],
        "model_type": "qwen3_5_text",
        "mtp_num_hidden_layers": 1,
        "mtp_use_dedicated_embeddings": False,
        "num_attention_heads": 2,
        "num_hidden_layers": len(layer_types),
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-06,
        "use_cache": True,
        "vocab_size": VOCAB_SIZE,
        "rope_parameters": {
            "mrope_interleaved": True,
            "mrope_section": [11, 11, 10],
            "rope_type": "default",
            "rope_theta": 10000000,  # an integer, as published
            "partial_rotary_factor": 0.25,
        },
    }


def vision_config(hidden_size: int) -> dict[str, Any]:
    """vision_config as published (patch 16, merge 2), with a tiny tower."""
    return {
        "deepstack_visual_indexes": [],
        "depth": 2,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 32,
        "in_channels": 3,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "model_type": "qwen3_5",
        "num_heads": 2,
        "num_position_embeddings": 64,
        "out_hidden_size": hidden_size,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }


def config_json(layout: Layout) -> dict[str, Any]:
    text = text_config(layout)
    return {
        "architectures": ["Qwen3_5ForConditionalGeneration"],
        **VISION_TOKEN_IDS,
        "model_type": "qwen3_5",
        "text_config": text,
        "tie_word_embeddings": True,
        "transformers_version": "4.57.0.dev0",
        "vision_config": vision_config(text["hidden_size"]),
    }


_PROCESSOR_COMMON = {
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "merge_size": 2,
    "patch_size": 16,
    "processor_class": "Qwen3VLProcessor",
    "temporal_patch_size": 2,
}
PREPROCESSOR_CONFIG = {
    **_PROCESSOR_COMMON,
    "image_processor_type": "Qwen2VLImageProcessorFast",
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
}
VIDEO_PREPROCESSOR_CONFIG = {
    **_PROCESSOR_COMMON,
    "do_sample_frames": True,
    "fps": 2,
    "max_frames": 768,
    "min_frames": 4,
    "size": {"longest_edge": 25165824, "shortest_edge": 4096},
    "video_processor_type": "Qwen3VLVideoProcessor",
}


def _text_tensors(text: dict[str, Any], seed: int, ends_turns: bool) -> dict[str, torch.Tensor]:
    from devtools.random_checkpoint import random_model

    config = {**{k: v for k, v in text.items() if k != "dtype"}, "tie_word_embeddings": True}
    model = random_model(config, seed)
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied
        tensors["model.language_model." + name.removeprefix("model.")] = tensor
    if ends_turns:
        end_turns(tensors["model.language_model.embed_tokens.weight"])
    return tensors


# The turn-ending tweak (measured on seed 0: transformers' greedy reply to "Tell me a story." is one token
# and <|im_end|>; most prompts end at once, none runs on). Hidden dimension 0 of the rows from
# TURN_END_ROWS on (ids a random model emits; rarely a prompt's) gets TURN_END_OFFSET, so once the reply
# feeds such a token back, the final hidden state's dimension 0 is positive; <|im_end|>'s row gets
# TURN_END_SCALE times the offset there, so its logit then leads.
TURN_END_ROWS = 150000
TURN_END_OFFSET = 0.1
TURN_END_SCALE = 3.0


def end_turns(embed: torch.Tensor) -> None:
    """Make a seeded random model end its turn within a few steps (in place; embed [V, H])."""
    with torch.no_grad():
        embed[TURN_END_ROWS:ENDOFTEXT_ID, 0] = TURN_END_OFFSET
        embed[IM_END_ID, 0] = TURN_END_OFFSET * TURN_END_SCALE


def _vision_tensors(vision: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    from devtools.random_checkpoint import random_vision_model

    tower_config = {k: v for k, v in vision.items() if k not in ("model_type", "out_hidden_size")}
    tower = random_vision_model(tower_config, vision["out_hidden_size"], seed + 1)
    return {"model.visual." + name: tensor for name, tensor in tower.state_dict().items()}


def mtp_shapes(text: dict[str, Any], full_layer: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The MTP head's tensors: one full-attention decoder layer fed by fc([embedding; hidden])."""
    hidden = text["hidden_size"]
    shapes = {
        "mtp.fc.weight": (hidden, 2 * hidden),
        "mtp.norm.weight": (hidden,),
        "mtp.pre_fc_norm_embedding.weight": (hidden,),
        "mtp.pre_fc_norm_hidden.weight": (hidden,),
    }
    shapes.update({f"mtp.layers.0.{name}": shape for name, shape in full_layer.items()})
    return shapes


def _mtp_tensors(
    text: dict[str, Any], tensors: dict[str, torch.Tensor], seed: int
) -> dict[str, torch.Tensor]:
    full = text["layer_types"].index("full_attention")
    prefix = f"model.language_model.layers.{full}."
    layer = {k.removeprefix(prefix): tuple(v.shape) for k, v in tensors.items() if k.startswith(prefix)}
    generator = torch.Generator().manual_seed(seed + 2)
    return {
        name: torch.randn(shape, generator=generator) * 0.02
        for name, shape in mtp_shapes(text, layer).items()
    }


def shard_names(count: int) -> list[str]:
    """The published shard names: model.safetensors-00001-of-00001.safetensors, ..."""
    return [f"model.safetensors-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def write_weights(out_dir: Path, tensors: dict[str, torch.Tensor], shards: int) -> None:
    """bf16 shards under the published names, split in name order, and their index."""
    from safetensors.torch import save_file

    names = sorted(tensors)
    files = shard_names(shards)
    per_shard = -(-len(names) // shards)
    weight_map: dict[str, str] = {}
    total = 0
    for number, file in enumerate(files):
        part = {
            n: tensors[n].to(torch.bfloat16).contiguous() for n in names[number * per_shard :][:per_shard]
        }
        save_file(part, str(out_dir / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
        total += sum(t.numel() * t.element_size() for t in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def write_tokenizer_files(out_dir: Path) -> None:
    """tokenizer.json (the real vocabulary), vocab.json and merges.txt from it, tokenizer_config.json."""
    source = real_tokenizer_json()
    shutil.copyfile(source, out_dir / "tokenizer.json")
    document = json.loads(source.read_text(encoding="utf-8"))
    model = document["model"]
    (out_dir / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    added = {
        str(token["id"]): {
            k: token[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")
        }
        for token in document["added_tokens"]
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 262144,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def write_replica(out_dir: Path, layout: str = "0.8b", seed: int = 0, ends_turns: bool = False) -> Path:
    """Write one replica into `out_dir` (created); returns it."""
    spec = LAYOUTS[layout]
    config = config_json(spec)
    text = copy.deepcopy(config["text_config"])
    tensors = _text_tensors(text, seed, ends_turns)
    tensors.update(_vision_tensors(config["vision_config"], seed))
    tensors.update(_mtp_tensors(text, tensors, seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_weights(out_dir, tensors, spec.shards)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_tokenizer_files(out_dir)
    (out_dir / "chat_template.jinja").write_text(chat_template(spec.thinking), encoding="utf-8")
    (out_dir / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2) + "\n")
    (out_dir / "video_preprocessor_config.json").write_text(
        json.dumps(VIDEO_PREPROCESSOR_CONFIG, indent=2) + "\n"
    )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devtools.published_replica")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="0.8b")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ends-turns", action="store_true", help="a model that emits <|im_end|> within a few steps"
    )
    args = parser.parse_args(argv)
    write_replica(args.out_dir, args.layout, args.seed, args.ends_turns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
