"""GPT-2's byte-level alphabet: each of the 256 byte values is shown as one printable character.

Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, soft hyphen...) are moved to
U+0100 onwards, in byte order. Pre-tokenization maps UTF-8 bytes to these characters and the decoder maps
them back, so a byte-level vocabulary can spell any byte string.
"""

from __future__ import annotations


def _byte_to_char() -> dict[int, str]:
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {byte: chr(byte) for byte in printable}
    shifted = (byte for byte in range(256) if byte not in mapping)
    for offset, byte in enumerate(shifted):
        mapping[byte] = chr(0x100 + offset)
    return mapping


BYTE_TO_CHAR: dict[int, str] = _byte_to_char()
CHAR_TO_BYTE: dict[str, int] = {char: byte for byte, char in BYTE_TO_CHAR.items()}

# For str.translate over text decoded as Latin-1 (one char per byte).
_LATIN1_TO_ALPHABET = {byte: char for byte, char in BYTE_TO_CHAR.items() if chr(byte) != char}


def to_byte_level(text: str) -> str:
    """The byte-level spelling of `text`'s UTF-8 encoding."""
    if text.isascii() and text.isprintable() and " " not in text:
        return text  # printable ASCII other than space maps to itself
    return text.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_ALPHABET)


def from_byte_level(token: str) -> bytes | None:
    """Bytes spelled by `token`, or None if it contains a character outside the byte-level alphabet."""
    try:
        return bytes(CHAR_TO_BYTE[char] for char in token)
    except KeyError:
        return None
