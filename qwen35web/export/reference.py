"""The PyTorch reference: transformers' own Qwen3_5ForCausalLM holding the checkpoint's text weights."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch

from qwen35web.export.checkpoint import Checkpoint
from qwen35web.runtime.bundle_format import ModelFacts

log = logging.getLogger(__name__)


def text_config_dict(config: dict[str, Any]) -> dict[str, Any]:
    """The text decoder's config from either layout."""
    if config.get("model_type") == "qwen3_5":
        top_level = ("tie_word_embeddings", "eos_token_id")
        merged: dict[str, Any] = {k: config[k] for k in top_level if k in config}
        merged.update(config["text_config"])
        merged["model_type"] = "qwen3_5_text"
        return merged
    return dict(config)


def load_reference(spec: ModelFacts, config: dict[str, Any], checkpoint: Checkpoint) -> torch.nn.Module:
    """Build transformers' model on the meta device and assign the checkpoint's tensors to it."""
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    text = {k: v for k, v in text_config_dict(config).items() if k != "architectures"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_config = Qwen3_5TextConfig(**text)
    hf_config._attn_implementation = "eager"
    with torch.device("meta"):
        model = Qwen3_5ForCausalLM(hf_config)
    state = {}
    for name in model.state_dict():
        if name == "lm_head.weight" and spec.tie_word_embeddings:
            continue
        source = spec.weight_prefix + name.removeprefix("model.") if name.startswith("model.") else name
        state[name] = checkpoint.load(source)
    model.load_state_dict(state, strict=False, assign=True)
    if spec.tie_word_embeddings:
        model.tie_weights()
    # Non-persistent buffers (rotary frequencies) were created on the meta device.
    model.model.rotary_emb.__init__(hf_config)
    return model.eval()
