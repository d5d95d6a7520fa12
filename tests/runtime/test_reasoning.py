"""The reasoning split: same parts however the text is cut into streamed pieces."""

from __future__ import annotations

import pytest

from qwen35web.runtime.reasoning import Piece, ReasoningSplitter


def _split(chunks: list[str], starts_in_reasoning: bool) -> tuple[list[Piece], ReasoningSplitter]:
    splitter = ReasoningSplitter(starts_in_reasoning)
    pieces = [p for chunk in chunks for p in splitter.push(chunk)] + splitter.flush()
    return pieces, splitter


def _every_cut(text: str) -> list[list[str]]:
    """The text whole, one character at a time, and cut in two at every position."""
    return [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]


CASES = [
    # (raw reply, prompt left <think> open, expected reasoning, expected answer)
    ("<think>\nLet me see.\n</think>\n\nIt is 4.", False, "Let me see.", "It is 4."),
    ("Let me see.\nTwo lines.\n\n</think>\n\nIt is 4.\n", True, "Let me see.\nTwo lines.", "It is 4.\n"),
    ("\n\nJust an answer <think> not a tag here", False, "", "Just an answer <think> not a tag here"),
    ("still thinking when it stopped\n", True, "still thinking when it stopped", ""),
    ("  <think>x</think>y", False, "x", "y"),
    ("<thin", False, "", "<thin"),
    ("a </thin b</think>c", True, "a </thin b", "c"),
]


@pytest.mark.parametrize(("raw", "opened", "reasoning", "answer"), CASES)
def test_parts_do_not_depend_on_how_the_text_streams(raw, opened, reasoning, answer):
    for chunks in _every_cut(raw):
        pieces, splitter = _split(chunks, opened)
        assert (splitter.reasoning, splitter.text) == (reasoning, answer), chunks
        assert "".join(p.text for p in pieces if p.kind == "reasoning") == reasoning
        assert "".join(p.text for p in pieces if p.kind == "text") == answer
        assert all(p.text for p in pieces)


def test_each_piece_says_which_part_it_is():
    pieces, _ = _split(["<think>\nhm", "m\n</th", "ink>\n\nyes"], False)
    assert pieces == [Piece("reasoning", "hm"), Piece("reasoning", "m"), Piece("text", "yes")]
