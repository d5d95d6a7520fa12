"""A draft's stable prefix (prefill while typing): whatever is typed after it, its tokens stay a
prefix of the whole message's tokens. Checked on Qwen3.5's real vocabulary."""

from __future__ import annotations

import random

import pytest

from qwen35web.runtime.prefill_ahead import stable_text

DRAFTS = ["Hello wor", "a  ", "Tell me about json", "it'", "x\n ", "1234", "Hi!!", "naïve cafe", "e"]
TAILS = ["", "ld", "s", " ", "\n", "\u0301", "5", "!?", "b c", "\n\nnext", "'s", " 世界"]
ALPHABET = "ab é世1 \n\t!'.,-é\u0301"


def test_pieces_join_back_to_the_normalised_text(real_pair):
    tokenizer = real_pair.ours
    for text in ["Hello world, it's 2026!\n\n  ok", "naïve cafe\u0301", " 世界 x"]:
        pieces = tokenizer.pieces(text)
        assert len(pieces) > 1
        assert "".join(pieces) == "".join(tokenizer.pieces(text))
        assert pieces[0] == text[: len(pieces[0])]


@pytest.mark.parametrize("draft", DRAFTS)
def test_stable_text_drops_the_piece_a_later_character_can_change(real_pair, draft):
    tokenizer = real_pair.ours
    stable = stable_text(tokenizer, draft)
    assert draft.startswith(stable) or not stable
    for tail in TAILS:
        whole = tokenizer.encode(draft + tail)
        ids = tokenizer.encode(stable)
        assert whole[: len(ids)] == ids, (draft, tail)


def test_stable_text_holds_for_random_drafts(real_pair):
    tokenizer = real_pair.ours
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        draft = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12)))
        tail = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4)))
        stable = stable_text(tokenizer, draft)
        ids = tokenizer.encode(stable)
        assert tokenizer.encode(draft + tail)[: len(ids)] == ids, (draft, tail)
        checked += bool(ids)
    assert checked > 100  # most drafts have a stable part: the property is not vacuous


def test_the_last_word_is_not_stable(real_pair):
    assert stable_text(real_pair.ours, "Hello wor") == "Hello"
    assert stable_text(real_pair.ours, "Hello") == ""
    assert stable_text(real_pair.ours, "Hello  ") == "Hello"
