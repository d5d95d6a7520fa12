"""Pre-tokenizers of tokenizer.json (`Split`, `ByteLevel`, `Sequence`), with `tokenizers`' exact splitting.

A pre-tokenizer turns each piece of text (the text between added tokens) into smaller pieces that the
BPE model encodes independently. Pieces are plain `str`; empty pieces are dropped, as `tokenizers` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Protocol

from qwen35web.runtime.tokenizer.byte_level import to_byte_level
from qwen35web.runtime.tokenizer.regex_translate import compile_pattern

# ByteLevel's built-in GPT-2 pattern (used when use_regex is true).
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

_BEHAVIORS = ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous")

Span = tuple[int, int, bool]  # (start, end, is_delimiter) in str indices


class PreTokenizer(Protocol):
    def pre_tokenize(self, pieces: list[str]) -> list[str]: ...


def _onig_find_iter(regex: re.Pattern[str], text: str) -> Iterator[tuple[int, int]]:
    """Match spans in the order Oniguruma's find_iter gives them (as the Rust `onig` crate iterates).

    It refuses an empty match right where the previous match ended and then moves on one character,
    whereas Python's finditer would retry at the same position; both agree when nothing is empty.
    """
    last_end = 0
    last_match_end = -1
    while last_end <= len(text):
        match = regex.search(text, last_end)
        if match is None:
            return
        start, end = match.span()
        if start == end and last_end == last_match_end:
            last_end += 1
            continue
        last_end = last_match_end = end
        yield start, end


def find_spans(regex: re.Pattern[str], text: str) -> list[Span]:
    """Cover `text` with spans: the matches (True) and the gaps between them (False)."""
    if not text:
        return [(0, 0, False)]
    matches = [m.span() for m in regex.finditer(text)]
    if any(start == end for start, end in matches):
        matches = list(_onig_find_iter(regex, text))
    spans: list[Span] = []
    previous = 0
    for start, end in matches:
        if previous != start:
            spans.append((previous, start, False))
        spans.append((start, end, True))
        previous = end
    if previous != len(text):
        spans.append((previous, len(text), False))
    return spans


def _merge_spans(spans: list[Span], behavior: str) -> list[tuple[int, int]]:
    """Apply a SplitDelimiterBehavior to covering spans; returns the (start, end) pieces to keep."""
    if behavior == "Isolated":
        return [(start, end) for start, end, _ in spans]
    if behavior == "Removed":
        return [(start, end) for start, end, is_match in spans if not is_match]
    if behavior == "MergedWithNext":
        reversed_pieces = _merge_into_neighbour(list(reversed(spans)), merge_into_previous=False)
        return list(reversed(reversed_pieces))
    if behavior == "MergedWithPrevious":
        return _merge_into_neighbour(spans, merge_into_previous=True)
    pieces: list[tuple[int, int]] = []  # Contiguous: runs of equal is_match join
    previous_match = False
    for start, end, is_match in spans:
        if pieces and is_match == previous_match:
            pieces[-1] = (pieces[-1][0], end)
        else:
            pieces.append((start, end))
        previous_match = is_match
    return pieces


def _merge_into_neighbour(spans: list[Span], merge_into_previous: bool) -> list[tuple[int, int]]:
    # Mirrors tokenizers: a delimiter that follows a non-delimiter joins the piece collected before it
    # (for MergedWithNext the spans come reversed, so "before" is the following piece).
    pieces: list[tuple[int, int]] = []
    previous_match = False
    for start, end, is_match in spans:
        if is_match and not previous_match and pieces:
            first, last = pieces[-1]
            pieces[-1] = (first, end) if merge_into_previous else (start, last)
        else:
            pieces.append((start, end))
        previous_match = is_match
    return pieces


class SplitPreTokenizer:
    """`Split` with a Regex or String pattern, a delimiter behavior and optional inversion."""

    def __init__(self, pattern: str, behavior: str, invert: bool) -> None:
        if behavior not in _BEHAVIORS:
            raise ValueError(f"unsupported Split behavior {behavior!r} in tokenizer.json")
        self.regex = compile_pattern(pattern)
        self.behavior = behavior
        self.invert = invert

    def split(self, text: str) -> list[str]:
        if self.behavior == "Isolated":
            # Fast path for the common case: every match and every gap is its own piece.
            return [text[start:end] for start, end, _ in find_spans(self.regex, text) if end > start]
        spans = find_spans(self.regex, text)
        if self.invert:
            spans = [(start, end, not is_match) for start, end, is_match in spans]
        return [text[start:end] for start, end in _merge_spans(spans, self.behavior) if end > start]

    def pre_tokenize(self, pieces: list[str]) -> list[str]:
        return [part for piece in pieces for part in self.split(piece)]


class ByteLevelPreTokenizer:
    """`ByteLevel`: optional prefix space, optional GPT-2 regex split, then the byte-level alphabet."""

    def __init__(self, add_prefix_space: bool, use_regex: bool) -> None:
        self.add_prefix_space = add_prefix_space
        self.splitter = SplitPreTokenizer(GPT2_PATTERN, "Isolated", False) if use_regex else None

    def pre_tokenize(self, pieces: list[str]) -> list[str]:
        out: list[str] = []
        for piece in pieces:
            if not piece:
                continue  # tokenizers never hands a pre-tokenizer an empty piece
            if self.add_prefix_space and not piece.startswith(" "):
                piece = " " + piece
            parts = self.splitter.split(piece) if self.splitter else [piece]
            out.extend(to_byte_level(part) for part in parts if part)
        return out


class SequencePreTokenizer:
    def __init__(self, stages: list[PreTokenizer]) -> None:
        self.stages = stages

    def pre_tokenize(self, pieces: list[str]) -> list[str]:
        for stage in self.stages:
            pieces = stage.pre_tokenize(pieces)
        return pieces


def _split_from_config(config: dict[str, Any]) -> SplitPreTokenizer:
    pattern = config["pattern"]
    if "Regex" in pattern:
        source = pattern["Regex"]
    elif "String" in pattern:
        # Escape for Oniguruma's syntax, which our translator reads; any non-alphanumeric may be escaped.
        source = "".join(ch if ch.isalnum() or ord(ch) > 0x7F else "\\" + ch for ch in pattern["String"])
    else:
        raise ValueError(f"unsupported Split pattern {pattern!r} in tokenizer.json")
    return SplitPreTokenizer(source, config["behavior"], bool(config.get("invert", False)))


def pre_tokenizer_from_config(config: dict[str, Any] | None) -> PreTokenizer | None:
    """Build the pre-tokenizer described by tokenizer.json's "pre_tokenizer" entry."""
    if config is None:
        return None
    kind = config.get("type")
    if kind == "Split":
        return _split_from_config(config)
    if kind == "ByteLevel":
        return ByteLevelPreTokenizer(
            add_prefix_space=bool(config.get("add_prefix_space", True)),
            use_regex=bool(config.get("use_regex", True)),
        )
    if kind == "Sequence":
        stages = [pre_tokenizer_from_config(stage) for stage in config["pretokenizers"]]
        return SequencePreTokenizer([stage for stage in stages if stage is not None])
    raise ValueError(f"unsupported pre-tokenizer type {kind!r} in tokenizer.json")
