"""Our Tokenizer against Hugging Face `tokenizers` on the corpus and on generated text, for every pair."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runtime.tokenizer.conftest import TokenizerPair
from tests.runtime.tokenizer.corpus import CORPUS

# Deterministic examples keep CI reproducible; run with a larger max_examples locally to explore.
PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Fragments that hit the pattern's edge cases far more often than uniform code points would.
_FRAGMENTS = [
    " ", "  ", "\n", "\r\n", "\r", "\t", " \n ", "'s", "'S", "'ll", "'Re", "'", "\u017f", "1", "12", "1234",
    "a", "Z", "é", "e\u0301", "A\u030a", "中", "の", "ا", "न", "\u093f", "😀", "👍🏽", "\u200d", "\u00a0",
    "\u3000", "\x1c", "\x85", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "[MASK]",
    "hello", " hello ", "_hello", "<|", "|>", "\x00", "\ufffd", "\U0001f3f3\ufe0f", "Σ",
]  # fmt: skip
TEXTS = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=4)), max_size=24).map("".join),
)


def _hf_ids(pair: TokenizerPair, text: str) -> list[int]:
    return pair.hf.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("text", CORPUS, ids=lambda text: repr(text[:24]))
def test_encode_matches_tokenizers_on_corpus(any_pair: TokenizerPair, text: str) -> None:
    assert any_pair.ours.encode(text) == _hf_ids(any_pair, text)


@pytest.mark.parametrize("skip_special_tokens", [False, True])
def test_decode_matches_tokenizers_on_corpus(any_pair: TokenizerPair, skip_special_tokens: bool) -> None:
    for text in CORPUS:
        ids = _hf_ids(any_pair, text)
        expected = any_pair.hf.decode(ids, skip_special_tokens=skip_special_tokens)
        assert any_pair.ours.decode(ids, skip_special_tokens=skip_special_tokens) == expected, text


def test_vocabulary_accessors_match(any_pair: TokenizerPair) -> None:
    hf, ours = any_pair.hf, any_pair.ours
    assert ours.vocab_size == hf.get_vocab_size(with_added_tokens=True)
    decoder = hf.get_added_tokens_decoder()
    assert ours.special_ids == frozenset(i for i, token in decoder.items() if token.special)
    probe_ids = [*range(0, 300), *decoder, ours.vocab_size - 1, ours.vocab_size, ours.vocab_size + 7]
    for token_id in probe_ids:
        token = hf.id_to_token(token_id)
        assert ours.id_to_token(token_id) == token
        if token is not None:
            assert ours.token_to_id(token) == hf.token_to_id(token)
    assert ours.token_to_id("no such token \u2603") is None


@PROPERTY_SETTINGS
@given(text=TEXTS)
def test_encode_matches_tokenizers_on_generated_text(any_pair: TokenizerPair, text: str) -> None:
    assert any_pair.ours.encode(text) == _hf_ids(any_pair, text)


@PROPERTY_SETTINGS
@given(text=TEXTS)
def test_decode_of_encode(any_pair: TokenizerPair, text: str) -> None:
    ids = any_pair.ours.encode(text)
    decoded = any_pair.ours.decode(ids)
    assert decoded == any_pair.hf.decode(ids, skip_special_tokens=False)
    assert any_pair.ours.decode(ids, skip_special_tokens=True) == any_pair.hf.decode(ids)


@PROPERTY_SETTINGS
@given(text=st.text())
def test_round_trip_without_normalizer(gpt2_style_pair: TokenizerPair, text: str) -> None:
    # A byte-level tokenizer can spell any string; decode(encode(t)) gives t back (plus the prefix space).
    decoded = gpt2_style_pair.ours.decode(gpt2_style_pair.ours.encode(text))
    assert decoded.removeprefix(" ") == text.removeprefix(" ")


def test_lone_surrogates_are_encoded_as_replacement_characters(any_pair: TokenizerPair) -> None:
    # Possible in strings coming from JavaScript; tokenizers itself cannot take them (no UTF-8 form).
    assert any_pair.ours.encode("a\ud83d b\udc00") == _hf_ids(any_pair, "a\ufffd b\ufffd")
