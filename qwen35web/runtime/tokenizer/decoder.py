"""Decoders of tokenizer.json: token strings back to bytes, then to text.

Both supported decoders reduce to "bytes of each token, joined by a separator, decoded as UTF-8 with
U+FFFD for invalid bytes" (Rust's String::from_utf8_lossy and Python's errors="replace" substitute the same
maximal ill-formed subsequences), which is what lets the stream decoder work byte by byte.
"""

from __future__ import annotations

from typing import Any, Protocol

from qwen35web.runtime.tokenizer.byte_level import from_byte_level


class Decoder(Protocol):
    separator: bytes

    def token_bytes(self, token: str) -> bytes: ...


class ByteLevelDecoder:
    """`ByteLevel`: characters of the byte-level alphabet back to bytes (other tokens: their UTF-8)."""

    separator = b""

    def token_bytes(self, token: str) -> bytes:
        spelled = from_byte_level(token)
        return token.encode("utf-8") if spelled is None else spelled


class JoinWithSpaceDecoder:
    """No decoder in tokenizer.json: `tokenizers` joins the token strings with single spaces."""

    separator = b" "

    def token_bytes(self, token: str) -> bytes:
        return token.encode("utf-8")


def decode_tokens(decoder: Decoder, tokens: list[str]) -> str:
    return decoder.separator.join(map(decoder.token_bytes, tokens)).decode("utf-8", errors="replace")


def decoder_from_config(config: dict[str, Any] | None) -> Decoder:
    """Build the decoder described by tokenizer.json's "decoder" entry."""
    if config is None:
        return JoinWithSpaceDecoder()
    kind = config.get("type")
    if kind == "ByteLevel":
        return ByteLevelDecoder()
    if kind == "Sequence" and [step.get("type") for step in config.get("decoders", [])] == ["ByteLevel"]:
        return ByteLevelDecoder()
    raise ValueError(f"unsupported decoder type {kind!r} in tokenizer.json")
