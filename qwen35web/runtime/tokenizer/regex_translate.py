"""Translate an Oniguruma (Ruby syntax) pattern, as found in tokenizer.json, into a Python `re` pattern.

Python's `re` has no `\\p{..}` and its `\\s`, `\\d`, `\\w` follow the running Python's Unicode version and
Python's own definitions (`\\s` matches U+001C..U+001F, Oniguruma's does not). Every class escape is
therefore replaced by explicit code-point ranges from `unicode_classes`. Both engines are backtracking,
leftmost-first engines, so alternation order, greediness and lookarounds keep their meaning.

Supported: literals and escapes, `.`, classes (negation, ranges, class escapes inside), groups `(?:`,
lookarounds, atomic groups, named groups, inline flags i/m/x (Ruby's `m` is Python's `s`), quantifiers,
anchors `^ $ \\A \\z \\Z \\b \\B`, back-references. Anything else raises ValueError naming the construct.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from qwen35web.runtime.tokenizer.unicode_classes import (
    Range,
    complement,
    digit_ranges,
    property_ranges,
    union,
    white_space_ranges,
    word_ranges,
)

_HEX_DIGIT_RANGES: tuple[Range, ...] = ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66))
_CONTROL_ESCAPES = {"t": 0x09, "n": 0x0A, "r": 0x0D, "f": 0x0C, "v": 0x0B, "a": 0x07, "e": 0x1B}
_UNSUPPORTED_ESCAPES = {"G": "\\G", "K": "\\K", "R": "\\R", "X": "\\X", "N": "\\N", "O": "\\O", "g": "\\g"}
_INTERVAL = re.compile(r"\{(?:\d+(?:,\d*)?|,\d+)\}")
_FLAG_MAP = {"i": "i", "m": "s", "x": "x"}  # Ruby's (?m) is "dot matches newline"


def _unsupported(construct: str, pattern: str) -> ValueError:
    return ValueError(f"unsupported regex feature {construct!r} in pre-tokenizer pattern {pattern!r}")


def _class_escape_ranges(letter: str) -> tuple[Range, ...] | None:
    """Ranges for \\s \\d \\w \\h and their negations; None if `letter` is not one of them."""
    positive: dict[str, Callable[[], tuple[Range, ...]]] = {
        "s": white_space_ranges,
        "d": digit_ranges,
        "w": word_ranges,
        "h": lambda: _HEX_DIGIT_RANGES,
    }
    if letter in positive:
        return positive[letter]()
    if letter.lower() in positive:
        return complement(positive[letter.lower()]())
    return None


def _char_syntax(cp: int) -> str:
    if cp < 0x80 and chr(cp).isalnum():
        return chr(cp)
    return f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def class_syntax(ranges: tuple[Range, ...], negated: bool = False) -> str:
    """Python character-class source for the given ranges."""
    parts = []
    for first, last in ranges:
        if first == last:
            parts.append(_char_syntax(first))
        elif last == first + 1:
            parts.append(_char_syntax(first) + _char_syntax(last))
        else:
            parts.append(f"{_char_syntax(first)}-{_char_syntax(last)}")
    return ("[^" if negated else "[") + "".join(parts) + "]"


class _Translator:
    """Single pass over the pattern; `pos` always points at the next unread character."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0
        self.out: list[str] = []
        self.pending_closes = [0]  # per open group: scoped-flag groups to close at its end

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.pattern[index] if index < len(self.pattern) else ""

    def take(self) -> str:
        if self.pos >= len(self.pattern):
            raise ValueError(f"pre-tokenizer pattern ends early: {self.pattern!r}")
        ch = self.pattern[self.pos]
        self.pos += 1
        return ch

    def take_until(self, terminator: str) -> str:
        end = self.pattern.find(terminator, self.pos)
        if end < 0:
            raise ValueError(f"missing {terminator!r} in pre-tokenizer pattern {self.pattern!r}")
        text = self.pattern[self.pos : end]
        self.pos = end + len(terminator)
        return text

    def run(self) -> str:
        while self.pos < len(self.pattern):
            ch = self.take()
            if ch == "\\":
                self.out.append(self.escape_outside_class())
            elif ch == "[":
                negated, ranges = self.parse_class()
                self.out.append(class_syntax(ranges, negated))
            elif ch == "(":
                self.open_group()
            elif ch == ")":
                self.out.append(")" * self.pending_closes.pop() + ")")
                if not self.pending_closes:
                    raise ValueError(f"unbalanced ')' in pre-tokenizer pattern {self.pattern!r}")
            elif ch == "{":
                self.out.append(self.interval_or_brace())
            else:
                self.out.append(ch)
        if len(self.pending_closes) != 1:
            raise ValueError(f"unbalanced '(' in pre-tokenizer pattern {self.pattern!r}")
        return "".join(self.out) + ")" * self.pending_closes[0]

    def interval_or_brace(self) -> str:
        """A `{n,m}` quantifier (just after its '{'), or a literal '{' as in both engines."""
        interval = _INTERVAL.match(self.pattern, self.pos - 1)
        if interval is None:
            return "\\{"
        self.pos = interval.end()
        if self.peek() == "+":
            # Ruby syntax reads {n,m}+ as "({n,m})+", Python as possessive: refuse rather than guess.
            raise _unsupported("{n,m}+", self.pattern)
        return interval.group()

    def open_group(self) -> None:
        if self.peek() != "?":
            self.pending_closes.append(0)
            self.out.append("(")
            return
        self.take()
        head = self.peek()
        if head == "#":
            self.take_until(")")
        elif head in ":=!>" or (head == "<" and self.peek(1) in "=!"):
            self.pending_closes.append(0)
            self.out.append("(?")
        elif head in "<'":
            self.take()
            name = self.take_until(">" if head == "<" else "'")
            self.pending_closes.append(0)
            self.out.append(f"(?P<{name}>")
        else:
            self.inline_flags()

    def inline_flags(self) -> None:
        match = re.compile(r"([imx]*)(?:-([imx]*))?([:)])").match(self.pattern, self.pos)
        if match is None:
            raise _unsupported("(?" + self.pattern[self.pos : self.pos + 3], self.pattern)
        self.pos = match.end()
        on = "".join(_FLAG_MAP[f] for f in match.group(1))
        off = "".join(_FLAG_MAP[f] for f in match.group(2) or "")
        flags = on + (f"-{off}" if off else "")
        if match.group(3) == ":":
            self.pending_closes.append(0)
            self.out.append(f"(?{flags}:")
        else:
            # Onig's (?i) applies to the rest of the enclosing group; Python needs it scoped.
            self.pending_closes[-1] += 1
            self.out.append(f"(?{flags}:")

    def escape_outside_class(self) -> str:
        letter = self.take()
        if letter in "pP":
            negated, ranges = self.property_escape(letter)
            return class_syntax(ranges, negated)
        class_ranges = _class_escape_ranges(letter)
        if class_ranges is not None:
            return class_syntax(class_ranges)
        if letter in "bB":
            word = class_syntax(word_ranges())
            boundary = f"(?:(?<={word})(?!{word})|(?<!{word})(?={word}))"
            return boundary if letter == "b" else f"(?!{boundary})"
        anchors = {"A": r"\A", "z": r"\Z", "Z": r"(?=\n?\Z)"}
        if letter in anchors:
            return anchors[letter]
        if letter == "k" and self.peek() == "<":
            self.take()
            return f"(?P={self.take_until('>')})"
        if letter.isdigit() and letter != "0":
            return "\\" + letter
        return re.escape(chr(self.literal_escape(letter)))

    def property_escape(self, letter: str) -> tuple[bool, tuple[Range, ...]]:
        if self.take() != "{":
            raise _unsupported(f"\\{letter} without braces", self.pattern)
        name = self.take_until("}")
        negated = letter == "P"
        if name.startswith("^"):
            negated, name = not negated, name[1:]
        return negated, property_ranges(name)

    def literal_escape(self, letter: str) -> int:
        """Code point of a single-character escape (after the backslash and `letter` were read)."""
        if letter in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[letter]
        if letter == "x":
            if self.peek() == "{":
                self.take()
                return int(self.take_until("}"), 16)
            return int(self.take() + (self.take() if re.match("[0-9a-fA-F]", self.peek()) else ""), 16)
        if letter == "u":
            return int("".join(self.take() for _ in range(4)), 16)
        if letter == "0":
            digits = ""
            while len(digits) < 2 and self.peek() and self.peek() in "01234567":
                digits += self.take()
            return int(digits or "0", 8)
        if letter in _UNSUPPORTED_ESCAPES or letter.isalnum():
            raise _unsupported(_UNSUPPORTED_ESCAPES.get(letter, "\\" + letter), self.pattern)
        return ord(letter)

    def parse_class(self) -> tuple[bool, tuple[Range, ...]]:
        negated = self.peek() == "^"
        if negated:
            self.take()
        pieces: list[tuple[Range, ...]] = []
        first = True
        while True:
            ch = self.take()
            if ch == "]" and not first:
                return negated, union(*pieces)
            first = False
            if ch == "[" or (ch == "&" and self.peek() == "&"):
                raise _unsupported("nested class / class intersection", self.pattern)
            if ch == "\\":
                letter = self.take()
                escaped = self.class_escape(letter)
                if escaped is not None:
                    pieces.append(escaped)
                    continue
                low = 0x08 if letter == "b" else self.literal_escape(letter)
            else:
                low = ord(ch)
            pieces.append(((low, self.range_end(low)),))

    def class_escape(self, letter: str) -> tuple[Range, ...] | None:
        if letter in "pP":
            negated, ranges = self.property_escape(letter)
            return complement(ranges) if negated else ranges
        return _class_escape_ranges(letter)

    def range_end(self, low: int) -> int:
        """If a `-x` range follows, consume it and return its end; else `low`."""
        if self.peek() != "-" or self.peek(1) in ("]", ""):
            return low
        self.take()
        ch = self.take()
        if ch == "[":
            raise _unsupported("nested class", self.pattern)
        high = ord(ch)
        if ch == "\\":
            letter = self.take()
            if _class_escape_ranges(letter) is not None or letter in "pP":
                raise _unsupported("class escape as range end", self.pattern)
            high = 0x08 if letter == "b" else self.literal_escape(letter)
        if high < low:
            raise ValueError(f"empty range in pre-tokenizer pattern {self.pattern!r}")
        return high


def translate(pattern: str) -> str:
    """Python `re` source equivalent to the Oniguruma pattern (compile with re.MULTILINE)."""
    return _Translator(pattern).run()


@lru_cache(maxsize=32)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compiled Python equivalent of an Oniguruma pattern; ValueError when it cannot be expressed."""
    source = translate(pattern)
    try:
        # Ruby syntax: ^ and $ always match at line boundaries.
        return re.compile(source, re.MULTILINE)
    except re.error as error:
        raise ValueError(f"pre-tokenizer pattern {pattern!r} has no Python equivalent: {error}") from error
