"""The vocabulary's token bytes as a trie, to find every token an automaton state allows.

The trie is implicit: the tokens' bytes sorted, so every prefix's tokens are one contiguous run,
found by bisection. That keeps it to one list of bytes objects (a few MB at Qwen3.5's 248k
tokens, built in about a second, once per tokenizer) instead of millions of dict nodes, which
matters in the browser. A walk descends only through bytes the automaton accepts, so a state that
allows few tokens (a structural `"` or `:`) costs a few hundred steps, not the vocabulary.
"""

from __future__ import annotations

import weakref
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from qwen35web.runtime.grammar import DEAD, LazyDfa

_TRIES: weakref.WeakKeyDictionary[Any, dict[int, TokenTrie]] = weakref.WeakKeyDictionary()


class TokenTrie:
    def __init__(self, token_bytes: list[bytes | None]):
        entries = sorted((data, token) for token, data in enumerate(token_bytes) if data)
        self.keys = [data for data, _ in entries]
        self.ids = [token for _, token in entries]
        self.size = max(self.ids, default=-1) + 1  # ids are below this

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, vocab_size: int) -> TokenTrie:
        """The trie of tokenizer's ids below `vocab_size` (special tokens left out); cached."""
        per_size = _TRIES.setdefault(tokenizer, {})
        if vocab_size not in per_size:
            per_size[vocab_size] = cls([tokenizer.token_bytes(i) for i in range(vocab_size)])
        return per_size[vocab_size]

    def allowed(self, dfa: LazyDfa, state: int, extra: Iterable[int] = ()) -> array[int]:
        """Every token whose bytes `dfa` accepts from `state`, plus `extra`: ascending ids, as an
        array (4 bytes an id: a state allowing most of the vocabulary keeps ~1 MB, a set ~8 MB)."""
        extra = list(extra)
        found = list(extra)
        keys, ids = self.keys, self.ids
        few_bytes: dict[int, bytes | None] = {}
        stack = [(0, len(keys), 0, state)]  # (lo, hi, depth, state): keys[lo:hi] share depth bytes
        while stack:
            lo, hi, depth, current = stack.pop()
            while lo < hi and len(keys[lo]) == depth:  # tokens that end here
                found.append(ids[lo])
                lo += 1
            if lo == hi:
                continue
            if current not in few_bytes:
                few_bytes[current] = _few_bytes(dfa, current)
            few = few_bytes[current]
            if few is not None:  # look up the few allowed bytes, not every child (up to 256)
                prefix = keys[lo][:depth]
                for byte in few:
                    start = bisect_left(keys, prefix + bytes((byte,)), lo, hi)
                    end = hi if byte == 255 else bisect_left(keys, prefix + bytes((byte + 1,)), start, hi)
                    after = dfa.step(current, byte) if start < end else DEAD
                    if after != DEAD:
                        stack.append((start, end, depth + 1, after))
                continue
            while lo < hi:
                key = keys[lo]
                byte = key[depth]
                end = hi if byte == 255 else bisect_left(keys, key[:depth] + bytes((byte + 1,)), lo, hi)
                after = dfa.step(current, byte)
                if after != DEAD:
                    stack.append((lo, end, depth + 1, after))
                lo = end
        return array("i", sorted(set(found)) if extra else sorted(found))

    def longest_prefix(self, data: bytes) -> tuple[int, int]:
        """The token with the longest bytes that begin `data`: (id, its length); (-1, 0) if none."""
        best = (-1, 0)
        for size in range(1, len(data) + 1):
            head = data[:size]
            index = bisect_left(self.keys, head)
            if index == len(self.keys) or not self.keys[index].startswith(head):
                break  # no token begins with this: none begins with anything longer either
            if self.keys[index] == head:
                best = (self.ids[index], size)
        return best


_FEW_BYTES = 24  # a state allowing at most this many next bytes is walked byte by byte


def _few_bytes(dfa: LazyDfa, state: int) -> bytes | None:
    """The bytes `state` allows next when they are few (structure: whitespace, a quote, a comma),
    else None (inside a string: nearly all)."""
    allowed = dfa.next_bytes(state)
    return allowed if len(allowed) <= _FEW_BYTES else None
