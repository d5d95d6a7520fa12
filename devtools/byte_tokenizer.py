"""The test models' tokenizer: a byte-level BPE trained here on Python's own docstrings, and the
chat template (Qwen's <|im_start|> turns) the test models and the trained demo model share.

Nothing is downloaded; the same corpus gives the same tokenizer on every machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list[str]:
    import collections
    import functools
    import itertools
    import json as json_module
    import pathlib

    modules = [collections, functools, itertools, json_module, pathlib, torch.nn.functional]
    docs = [getattr(m, name).__doc__ or "" for m in modules for name in dir(m) if not name.startswith("_")]
    return [d for d in docs if d] + ["Hello world! 你好，世界。 🙂 emoji and numbers 12345."]


def write_tokenizer(out_dir: Path, vocab_size: int = 500) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "chat_template": CHAT_TEMPLATE,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
