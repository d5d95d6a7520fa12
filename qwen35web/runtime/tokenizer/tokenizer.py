"""Pure-Python tokenizer for a Hugging Face tokenizer.json (byte-level BPE), giving `tokenizers`' ids.

Runs in CPython and in Pyodide with the standard library only. Encoding follows `tokenizers`' pipeline:
added tokens are split out of the raw text, the rest is normalized, pre-tokenized and BPE-encoded piece
by piece. The post-processor is not applied (like `encode(text, add_special_tokens=False)`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from qwen35web.runtime.tokenizer.added_tokens import AddedVocabulary
from qwen35web.runtime.tokenizer.bpe import BPEModel, bpe_from_config
from qwen35web.runtime.tokenizer.byte_level import from_byte_level
from qwen35web.runtime.tokenizer.decoder import Decoder, decode_tokens, decoder_from_config
from qwen35web.runtime.tokenizer.normalize import Normalize, normalizer_from_config
from qwen35web.runtime.tokenizer.pretokenize import PreTokenizer, pre_tokenizer_from_config
from qwen35web.runtime.tokenizer.stream import StreamDecoder

logger = logging.getLogger(__name__)

# Lone surrogates (possible in a str that came from JavaScript) have no UTF-8 form. The web platform's
# TextEncoder, and so tokenizers' JavaScript binding, encodes each as U+FFFD; we do the same.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Text between two added tokens is encoded on its own, so a segment's ids can be remembered exactly.
# A conversation is rendered and encoded whole at every turn: with this, only its new messages are
# pre-tokenized and BPE-encoded (the rest were segments of the previous turn's text).
_SEGMENT_CACHE_ENTRIES = 1024
_SEGMENT_CACHE_MIN_CHARS = 32  # shorter segments cost less to encode than to remember


class Tokenizer:
    """Encode text to token ids and decode ids to text, identically to `tokenizers`."""

    def __init__(
        self,
        model: BPEModel,
        added: AddedVocabulary,
        normalizer: Normalize | None,
        pre_tokenizer: PreTokenizer | None,
        decoder: Decoder,
    ) -> None:
        self._model = model
        self._added = added
        self._normalizer = normalizer
        self._pre_tokenizer = pre_tokenizer
        self._decoder = decoder
        self.special_ids: frozenset[int] = added.special_ids
        added_only = sum(1 for content in added.content_to_id if model.token_to_id(content) is None)
        self.vocab_size: int = len(model.vocab) + added_only
        self._bytes_cache: dict[tuple[int, bool], bytes | None] = {}
        self._segment_cache: dict[str, list[int]] = {}  # oldest first

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        with open(path, encoding="utf-8") as handle:
            return cls.from_json(handle.read())

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Build from tokenizer.json text; ValueError names any feature that is not supported."""
        document: dict[str, Any] = json.loads(text)
        for feature in ("truncation", "padding"):
            if document.get(feature) is not None:
                raise ValueError(f"unsupported tokenizer.json feature {feature!r} (must be null)")
        model = bpe_from_config(document["model"])
        normalizer = normalizer_from_config(document.get("normalizer"))
        pre_tokenizer = pre_tokenizer_from_config(document.get("pre_tokenizer"))
        decoder = decoder_from_config(document.get("decoder"))
        added = AddedVocabulary(document.get("added_tokens") or [], model, normalizer)
        return cls(model, added, normalizer, pre_tokenizer, decoder)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens in it recognised (no BOS/EOS added)."""
        if _LONE_SURROGATE.search(text):
            text = _LONE_SURROGATE.sub("\ufffd", text)
        ids: list[int] = []
        for segment, token_id in self._added.split(text, self._normalizer):
            if token_id is not None:
                ids.append(token_id)
            elif len(segment) < _SEGMENT_CACHE_MIN_CHARS:
                ids.extend(self._encode_segment(segment))
            else:
                ids.extend(self._remembered_segment(segment))
        return ids

    def _encode_segment(self, segment: str) -> list[int]:
        """Ids of text that holds no added token (normalized as `split` left it)."""
        pieces = self._pre_tokenizer.pre_tokenize([segment]) if self._pre_tokenizer else [segment]
        tokenize = self._model.tokenize
        return [token_id for piece in pieces for token_id in tokenize(piece)]

    def _remembered_segment(self, segment: str) -> list[int]:
        cache = self._segment_cache
        ids = cache.get(segment)
        if ids is None:
            ids = cache[segment] = self._encode_segment(segment)
            if len(cache) > _SEGMENT_CACHE_ENTRIES:
                del cache[next(iter(cache))]
        return ids

    def pieces(self, text: str) -> list[str]:
        """`text` (normalised) split as the pre-tokenizer splits it, as text: BPE never merges across
        two pieces. Added tokens are not looked for. [text] when the pieces cannot be read back."""
        if self._normalizer is not None:
            text = self._normalizer(text)
        if not text or self._pre_tokenizer is None:
            return [text] if text else []
        pieces = []
        for piece in self._pre_tokenizer.pre_tokenize([text]):
            raw = from_byte_level(piece)
            pieces.append(raw.decode("utf-8", "replace") if raw is not None else piece)
        return pieces if "".join(pieces) == text else [text]

    def _token_for_decode(self, token_id: int, skip_special_tokens: bool) -> str | None:
        token = self._added.id_to_decode_token(token_id)
        if token is None:
            token = self._model.id_to_token(token_id)
        if token is None or (skip_special_tokens and self._added.is_special_content(token)):
            return None
        return token

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`; unknown ids are ignored and invalid UTF-8 becomes U+FFFD, as in `tokenizers`."""
        tokens = [self._token_for_decode(i, skip_special_tokens) for i in ids]
        return decode_tokens(self._decoder, [token for token in tokens if token is not None])

    def _token_bytes(self, token_id: int, skip_special_tokens: bool) -> bytes | None:
        key = (token_id, skip_special_tokens)
        if key not in self._bytes_cache:
            token = self._token_for_decode(token_id, skip_special_tokens)
            self._bytes_cache[key] = None if token is None else self._decoder.token_bytes(token)
        return self._bytes_cache[key]

    def token_bytes(self, token_id: int) -> bytes | None:
        """The bytes a token adds to decoded text; None for special tokens and unknown ids."""
        return self._token_bytes(token_id, True)

    def stream_decoder(self, skip_special_tokens: bool = False) -> StreamDecoder:
        return StreamDecoder(lambda i: self._token_bytes(i, skip_special_tokens), self._decoder.separator)

    def token_to_id(self, token: str) -> int | None:
        added = self._added.content_to_id.get(token)
        return added if added is not None else self._model.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        added = self._added.id_to_decode_token(i)
        return added if added is not None else self._model.id_to_token(i)
