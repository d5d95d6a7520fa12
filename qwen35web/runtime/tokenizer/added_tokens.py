"""Added tokens (special tokens such as <|im_start|>), found in the text before pre-tokenization.

Mirrors `tokenizers`' AddedVocabulary: ids are (re)assigned the way its deserializer does, tokens with
`normalized: false` are matched on the raw text, the others on the normalized text, matching is
leftmost-longest, and `single_word` / `lstrip` / `rstrip` use Unicode `\\w` / `\\s` as Rust's regex does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qwen35web.runtime.tokenizer.bpe import BPEModel
from qwen35web.runtime.tokenizer.regex_translate import class_syntax
from qwen35web.runtime.tokenizer.unicode_classes import white_space_ranges, word_ranges

logger = logging.getLogger(__name__)

Normalize = Callable[[str], str]
Segment = tuple[str, int | None]  # (text, added-token id or None for ordinary text)


@dataclass(frozen=True)
class AddedToken:
    content: str
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = True
    special: bool = False

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> AddedToken:
        special = bool(entry.get("special", False))
        return cls(
            content=entry["content"],
            single_word=bool(entry.get("single_word", False)),
            lstrip=bool(entry.get("lstrip", False)),
            rstrip=bool(entry.get("rstrip", False)),
            normalized=bool(entry.get("normalized", not special)),
            special=special,
        )


class _Matcher:
    """Leftmost-longest search for a set of literal strings (longest alternative first)."""

    def __init__(self, patterns: dict[str, int]) -> None:
        ordered = sorted(patterns, key=lambda text: (-len(text), text))
        self.ids = patterns
        self.regex = re.compile("|".join(map(re.escape, ordered))) if ordered else None


class AddedVocabulary:
    """The added tokens of a tokenizer and the splitting of text around them."""

    def __init__(self, entries: list[dict[str, Any]], model: BPEModel, normalize: Normalize | None) -> None:
        self.content_to_id: dict[str, int] = {}
        self.tokens: dict[int, AddedToken] = {}
        self.decode_form: dict[int, str] = {}  # normalized spelling used when decoding, where it differs
        self._assign_ids(entries, model, normalize)
        self.special_contents = frozenset(t.content for t in self.tokens.values() if t.special)
        self._raw = _Matcher({t.content: i for i, t in self.tokens.items() if not t.normalized})
        normalized_forms = {
            self.decode_form.get(i, t.content): i for i, t in self.tokens.items() if t.normalized
        }
        self._normalized = _Matcher(normalized_forms)
        self._word_end = re.compile(class_syntax(word_ranges()) + r"\Z")
        self._word_start = re.compile(class_syntax(word_ranges()))
        spaces = class_syntax(white_space_ranges())
        self._trailing_space = re.compile(spaces + r"*\Z")
        self._leading_space = re.compile(spaces + "*")

    def _assign_ids(
        self, entries: list[dict[str, Any]], model: BPEModel, normalize: Normalize | None
    ) -> None:
        # tokenizers ignores the ids written in the file: a token already in the model vocabulary keeps
        # that id, the others are numbered from the model's vocabulary size, in file order.
        next_id = len(model.vocab)
        for entry in entries:
            token = AddedToken.from_config(entry)
            if not token.content or self.tokens.get(self.content_to_id.get(token.content, -1)) == token:
                continue
            token_id = self.content_to_id.get(token.content, model.token_to_id(token.content))
            if token_id is None:
                token_id, next_id = next_id, next_id + 1
            if "id" in entry and entry["id"] != token_id:
                logger.warning("added token %r: file says id %s, tokenizers assigns %s", token.content,
                               entry["id"], token_id)  # fmt: skip
            if token.normalized and normalize is not None and normalize(token.content) != token.content:
                self.decode_form[token_id] = normalize(token.content)
            self.content_to_id[token.content] = token_id
            self.tokens[token_id] = token

    def split(self, text: str, normalize: Normalize | None) -> list[Segment]:
        """Raw-text tokens first, then normalize the rest and find the normalized tokens in it."""
        segments: list[Segment] = []
        for piece, token_id in self._find(text, self._raw):
            if token_id is not None:
                segments.append((piece, token_id))
                continue
            normalized = normalize(piece) if normalize else piece
            segments.extend(self._find(normalized, self._normalized))
        return [(piece, token_id) for piece, token_id in segments if piece]

    def _find(self, sentence: str, matcher: _Matcher) -> list[Segment]:
        if matcher.regex is None or not sentence:
            return [(sentence, None)]
        segments: list[Segment] = []
        start_offset = 0
        for match in matcher.regex.finditer(sentence):
            start, stop = match.span()
            token_id = matcher.ids[match.group()]
            token = self.tokens[token_id]
            if token.single_word and not self._is_single_word(sentence, start, stop):
                continue
            if token.lstrip:
                trailing = self._trailing_space.search(sentence, 0, start)
                start = max(trailing.start() if trailing else start, start_offset)
            if token.rstrip:
                spaces = self._leading_space.match(sentence, stop)  # always matches (possibly empty)
                stop = spaces.end() if spaces else stop
            if start_offset < start:
                segments.append((sentence[start_offset:start], None))
            segments.append((sentence[start:stop], token_id))
            start_offset = stop
        if start_offset != len(sentence):
            segments.append((sentence[start_offset:], None))
        return segments

    def _is_single_word(self, sentence: str, start: int, stop: int) -> bool:
        word_before = start > 0 and self._word_end.search(sentence, 0, start) is not None
        word_after = stop < len(sentence) and self._word_start.match(sentence, stop) is not None
        return not word_before and not word_after

    def is_special_content(self, token: str) -> bool:
        return token in self.special_contents

    def id_to_decode_token(self, token_id: int) -> str | None:
        token = self.tokens.get(token_id)
        if token is None:
            return None
        return self.decode_form.get(token_id, token.content)

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(token_id for token_id, token in self.tokens.items() if token.special)
