"""The BPE model of tokenizer.json, merging exactly as `tokenizers` does.

`tokenizers` merges with a priority queue ordered by (merge rank, position): it always applies the
lowest-ranked pair, leftmost first, one merge at a time, and re-queues the pairs a merge creates. This is
not the same as GPT-2's "merge every occurrence of the best pair" loop (they differ when a new pair
outranks a later occurrence of the old one), so the queue is reproduced here.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

_CACHE_CAPACITY = 20_000
_CACHEABLE_LENGTH = 256  # longer words are rare and would crowd the cache


class BPEModel:
    """Vocabulary + ranked merges. `tokenize(word)` gives the ids of one pre-tokenized piece."""

    def __init__(
        self,
        vocab: dict[str, int],
        merges: Iterable[tuple[str, str]],
        *,
        unk_token: str | None = None,
        continuing_subword_prefix: str | None = None,
        end_of_word_suffix: str | None = None,
        fuse_unk: bool = False,
        byte_fallback: bool = False,
        ignore_merges: bool = False,
    ) -> None:
        self.vocab = vocab
        self.vocab_r = {token_id: token for token, token_id in vocab.items()}
        self.unk_token = unk_token
        self.prefix = continuing_subword_prefix
        self.suffix = end_of_word_suffix
        self.fuse_unk = fuse_unk
        self.byte_fallback = byte_fallback
        self.ignore_merges = ignore_merges
        # Pair keys are packed into one int (left * stride + right): far smaller and faster than tuples.
        self._stride = max(vocab.values(), default=0) + 1
        self._merges = self._build_merge_table(merges)
        self._cache: dict[str, list[int]] = {}

    def _build_merge_table(self, merges: Iterable[tuple[str, str]]) -> dict[int, int]:
        """{left * stride + right: rank * stride + merged id}: two ints per merge instead of tuples."""
        vocab, stride = self.vocab, self._stride
        prefix_len = len(self.prefix.encode("utf-8")) if self.prefix else 0
        table: dict[int, int] = {}
        for rank, (left, right) in enumerate(merges):
            try:
                merged = left + right if not prefix_len else _strip_prefix_bytes(right, prefix_len, left)
                table[vocab[left] * stride + vocab[right]] = rank * stride + vocab[merged]
            except KeyError as error:
                raise ValueError(f"BPE merge {left!r} + {right!r} uses a token missing from vocab") from error
        return table

    def tokenize(self, word: str) -> list[int]:
        if not word:
            return []
        if self.ignore_merges:
            token_id = self.vocab.get(word)
            if token_id is not None:
                return [token_id]
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        ids = self._merge(self._initial_symbols(word))
        if len(word) < _CACHEABLE_LENGTH and len(self._cache) < _CACHE_CAPACITY:
            self._cache[word] = ids
        return ids

    def _initial_symbols(self, word: str) -> list[int]:
        """One id per character (with prefix/suffix decoration), unknowns as unk / bytes / dropped."""
        vocab = self.vocab
        if self.prefix is None and self.suffix is None and self.unk_token is None and not self.byte_fallback:
            # Fast path: byte-level vocabularies contain every character they can meet.
            return [token_id for token_id in map(vocab.get, word) if token_id is not None]
        symbols: list[int] = []
        pending_unk: int | None = None
        last = len(word) - 1
        for index, char in enumerate(word):
            piece = char
            if index > 0 and self.prefix is not None:
                piece = self.prefix + piece
            if index == last and self.suffix is not None:
                piece += self.suffix
            token_id = vocab.get(piece)
            if token_id is not None:
                if pending_unk is not None:
                    symbols.append(pending_unk)
                    pending_unk = None
                symbols.append(token_id)
                continue
            byte_ids = self._byte_fallback_ids(piece)
            if byte_ids is not None:
                symbols.extend(byte_ids)  # an unknown still pending stays pending, as in tokenizers
                continue
            if self.unk_token is not None:
                if pending_unk is not None and not self.fuse_unk:
                    symbols.append(pending_unk)
                pending_unk = self._unk_id()
        if pending_unk is not None:
            symbols.append(pending_unk)
        return symbols

    def _byte_fallback_ids(self, piece: str) -> list[int] | None:
        if not self.byte_fallback:
            return None
        ids = [self.vocab.get(f"<0x{byte:02X}>") for byte in piece.encode("utf-8")]
        return None if None in ids else ids  # type: ignore[return-value]

    def _unk_id(self) -> int:
        unk_id = self.vocab.get(self.unk_token or "")
        if unk_id is None:
            raise ValueError(f"BPE unk_token {self.unk_token!r} is not in the vocabulary")
        return unk_id

    def _merge(self, ids: list[int]) -> list[int]:
        """Apply merges in (rank, position) order, like tokenizers' Word::merge_all."""
        count = len(ids)
        if count < 2:
            return ids
        merges, stride = self._merges, self._stride
        following = [*range(1, count), -1]
        preceding = list(range(-1, count - 1))
        alive = [True] * count
        # Queue entries are (packed rank*stride + new id, position): ordered by rank, then position.
        queue = []
        for pos in range(count - 1):
            found = merges.get(ids[pos] * stride + ids[pos + 1])
            if found is not None:
                queue.append((found - found % stride, pos, found))
        heapq.heapify(queue)
        while queue:
            _, pos, packed = heapq.heappop(queue)
            right = following[pos]
            if not alive[pos] or right == -1:
                continue
            current = merges.get(ids[pos] * stride + ids[right])
            if current is None or current % stride != packed % stride:
                continue  # stale entry: the pair at pos has changed since it was queued
            new_id = packed % stride
            ids[pos] = new_id
            alive[right] = False
            after = following[right]
            following[pos] = after
            if after != -1:
                preceding[after] = pos
                found = merges.get(new_id * stride + ids[after])
                if found is not None:
                    heapq.heappush(queue, (found - found % stride, pos, found))
            before = preceding[pos]
            if before != -1:
                found = merges.get(ids[before] * stride + new_id)
                if found is not None:
                    heapq.heappush(queue, (found - found % stride, before, found))
        return [token_id for token_id, keep in zip(ids, alive, strict=True) if keep]

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self.vocab_r.get(token_id)


def _strip_prefix_bytes(right: str, prefix_len: int, left: str) -> str:
    # tokenizers drops the prefix's byte length from the right part, whatever its content.
    return left + right.encode("utf-8")[prefix_len:].decode("utf-8", errors="replace")


def _parse_merges(raw: list[Any]) -> Iterable[tuple[str, str]]:
    """Merges in either serialisation: [left, right] pairs (used as they are: no copy of a 500k-entry
    list while the table is built) or legacy "left right" strings (split lazily)."""
    if not raw or not isinstance(raw[0], str):
        return raw
    return _split_legacy_merges(raw)


def _split_legacy_merges(lines: list[str]) -> Iterator[tuple[str, str]]:
    for line_number, line in enumerate(lines, start=1):
        if line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"BPE merge #{line_number} {line!r} is not 'left right'")
        yield parts[0], parts[1]


def bpe_from_config(config: dict[str, Any]) -> BPEModel:
    """Build the model from tokenizer.json's "model" entry; ValueError for non-BPE models."""
    kind = config.get("type", "BPE" if "merges" in config else None)
    if kind != "BPE":
        raise ValueError(f"unsupported tokenizer model type {kind!r} (only BPE is implemented)")
    if config.get("dropout") not in (None, 0, 0.0):
        raise ValueError("unsupported BPE feature 'dropout' (random merges) in tokenizer.json")
    return BPEModel(
        config["vocab"],
        _parse_merges(config["merges"]),
        unk_token=config.get("unk_token"),
        continuing_subword_prefix=config.get("continuing_subword_prefix"),
        end_of_word_suffix=config.get("end_of_word_suffix"),
        fuse_unk=bool(config.get("fuse_unk", False)),
        byte_fallback=bool(config.get("byte_fallback", False)),
        ignore_merges=bool(config.get("ignore_merges", False)),
    )
