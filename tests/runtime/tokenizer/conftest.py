"""Fixtures: tokenizer.json files (the real Qwen3.5 one and tiny trained ones), loaded by both libraries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from devtools.real_vocab import real_tokenizer_json
from qwen35web.runtime.tokenizer import Tokenizer
from tests.runtime.tokenizer.corpus import CORPUS

QWEN35_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@dataclass(repr=False)
class TokenizerPair:
    """The same tokenizer.json loaded by `tokenizers` (reference) and by our pure-Python Tokenizer."""

    name: str
    json_text: str
    hf: HFTokenizer
    ours: Tokenizer

    def __repr__(self) -> str:
        return f"TokenizerPair({self.name!r})"

    @classmethod
    def from_hf(cls, name: str, hf: HFTokenizer) -> TokenizerPair:
        text = hf.to_str()
        return cls(name, text, HFTokenizer.from_str(text), Tokenizer.from_json(text))


def train_tiny(
    pre_tokenizer: pre_tokenizers.PreTokenizer,
    normalizer: normalizers.Normalizer | None = None,
    vocab_size: int = 700,
) -> HFTokenizer:
    """A small byte-level BPE trained on the corpus (seconds at most), with the chat special tokens."""
    hf = HFTokenizer(models.BPE())
    if normalizer is not None:
        hf.normalizer = normalizer
    hf.pre_tokenizer = pre_tokenizer
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    hf.train_from_iterator(CORPUS * 2, trainer)
    return hf


@pytest.fixture(scope="session")
def real_tokenizer_path() -> Path:
    # Cached across sessions (~5 s to build); QWEN35WEB_CACHE moves the cache.
    return real_tokenizer_json()


@pytest.fixture(scope="session")
def real_pair(real_tokenizer_path: Path) -> TokenizerPair:
    text = real_tokenizer_path.read_text(encoding="utf-8")
    return TokenizerPair("qwen3.5", text, HFTokenizer.from_str(text), Tokenizer.from_json(text))


@pytest.fixture(scope="session")
def gpt2_style_pair() -> TokenizerPair:
    """ByteLevel pre-tokenizer with its own regex (use_regex=True), prefix space added."""
    hf = train_tiny(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True))
    return TokenizerPair.from_hf("gpt2-style", hf)


@pytest.fixture(scope="session")
def qwen_style_pair() -> TokenizerPair:
    """Qwen's layout: NFC, Split(Qwen3.5 regex) then ByteLevel(use_regex=False), options on added tokens."""
    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN35_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf = train_tiny(pre, normalizer=normalizers.NFC())
    hf.model.ignore_merges = True
    hf.add_tokens(
        [
            AddedToken("<tool_call>", special=False, normalized=False),
            AddedToken("[MASK]", lstrip=True, rstrip=True, special=True, normalized=False),
            AddedToken("hello", single_word=True, normalized=True),
            AddedToken("A\u030a", normalized=True),  # matched (and decoded) in its NFC form "Å"
        ]
    )
    return TokenizerPair.from_hf("qwen-style", hf)


@pytest.fixture(scope="session", params=["gpt2-style", "qwen-style", "qwen3.5"])
def any_pair(request: pytest.FixtureRequest) -> TokenizerPair:
    names = {"gpt2-style": "gpt2_style_pair", "qwen-style": "qwen_style_pair", "qwen3.5": "real_pair"}
    return request.getfixturevalue(names[request.param])
