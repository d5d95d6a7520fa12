"""Incremental detokenization for generation: text appears as soon as its characters are complete."""

from __future__ import annotations

import codecs
from collections.abc import Callable


class StreamDecoder:
    """Feed token ids one at a time; each `push` returns only newly completed text.

    Bytes of a character that is still incomplete are held back; `flush` ends the stream and returns
    what is left, with U+FFFD wherever `decode` would put one. The pieces of all pushes plus `flush`
    concatenate to exactly `decode(ids)`: CPython's incremental UTF-8 decoder substitutes the same
    maximal ill-formed subsequences as a one-shot decode.
    """

    def __init__(self, token_bytes: Callable[[int], bytes | None], separator: bytes) -> None:
        self._token_bytes = token_bytes
        self._separator = separator
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._emitted_token = False

    def push(self, token_id: int) -> str:
        data = self._token_bytes(token_id)
        if data is None:  # unknown id, or a special token being skipped
            return ""
        if self._emitted_token:
            data = self._separator + data
        self._emitted_token = True
        return self._utf8.decode(data, final=False)

    def flush(self) -> str:
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        self._emitted_token = False
        return text
