"""decode() and StreamDecoder on arbitrary id sequences, including ids whose bytes are invalid UTF-8."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwen35web.runtime.tokenizer import Tokenizer
from tests.runtime.tokenizer.conftest import TokenizerPair

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _id_lists(vocab_size: int) -> st.SearchStrategy[list[int]]:
    # Mostly real ids (single bytes among them give broken UTF-8), some unknown ones past the end.
    return st.lists(
        st.one_of(
            st.integers(0, vocab_size - 1), st.integers(0, 300), st.integers(vocab_size, vocab_size + 50)
        ),
        max_size=40,
    )


def _stream(tokenizer: Tokenizer, ids: list[int], skip_special_tokens: bool) -> list[str]:
    decoder = tokenizer.stream_decoder(skip_special_tokens=skip_special_tokens)
    return [decoder.push(token_id) for token_id in ids] + [decoder.flush()]


@PROPERTY_SETTINGS
@given(data=st.data(), skip_special_tokens=st.booleans())
def test_decode_and_stream_match_tokenizers_on_any_ids(
    any_pair: TokenizerPair, data: st.DataObject, skip_special_tokens: bool
) -> None:
    ids = data.draw(_id_lists(any_pair.ours.vocab_size))
    expected = any_pair.hf.decode(ids, skip_special_tokens=skip_special_tokens)
    assert any_pair.ours.decode(ids, skip_special_tokens=skip_special_tokens) == expected
    # A push that emitted part of a character too early (or a premature U+FFFD) would break this.
    assert "".join(_stream(any_pair.ours, ids, skip_special_tokens)) == expected


def _byte_token_ids(tokenizer: Tokenizer, data: bytes) -> list[int]:
    from qwen35web.runtime.tokenizer.byte_level import BYTE_TO_CHAR

    ids = [tokenizer.token_to_id(BYTE_TO_CHAR[byte]) for byte in data]
    assert None not in ids
    return ids  # type: ignore[return-value]


def test_stream_holds_back_incomplete_characters(gpt2_style_pair: TokenizerPair) -> None:
    tokenizer = gpt2_style_pair.ours
    ids = _byte_token_ids(tokenizer, "a😀é".encode())
    assert _stream(tokenizer, ids, False) == ["a", "", "", "", "😀", "", "é", ""]


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"\xf0\x9f\x98",
        b"\xe2\x28\xa1",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"ok\xf4\x90\x80\x80!",
        b"\xf0\x9f",
    ],
    ids=repr,
)
def test_invalid_bytes_become_replacement_characters_like_tokenizers(
    gpt2_style_pair: TokenizerPair, data: bytes
) -> None:
    ids = _byte_token_ids(gpt2_style_pair.ours, data)
    expected = gpt2_style_pair.hf.decode(ids, skip_special_tokens=False)
    assert expected == data.decode("utf-8", errors="replace")
    assert gpt2_style_pair.ours.decode(ids) == expected
    assert "".join(_stream(gpt2_style_pair.ours, ids, False)) == expected


def test_skipped_special_tokens_and_reuse_after_flush(real_pair: TokenizerPair) -> None:
    tokenizer = real_pair.ours
    ids = tokenizer.encode("<|im_start|>assistant\n<think>hi</think>👍🏽<|im_end|>")
    decoder = tokenizer.stream_decoder(skip_special_tokens=True)
    first = "".join(decoder.push(i) for i in ids) + decoder.flush()
    assert first == "assistant\n<think>hi</think>👍🏽"  # <think> is an added token but not special
    second = "".join(decoder.push(i) for i in ids) + decoder.flush()
    assert second == first


def test_no_decoder_joins_tokens_with_spaces(gpt2_style_pair: TokenizerPair) -> None:
    import json

    from tokenizers import Tokenizer as HFTokenizer

    document = json.loads(gpt2_style_pair.json_text)
    document["decoder"] = None
    text = json.dumps(document)
    ours, hf = Tokenizer.from_json(text), HFTokenizer.from_str(text)
    ids = hf.encode("Hello, world! 😀").ids
    assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)
    assert "".join(_stream(ours, ids, False)) == ours.decode(ids)
