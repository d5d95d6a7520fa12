"""Normalizers of tokenizer.json that the standard library can reproduce (Unicode forms, lowercase)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, Literal, cast

Normalize = Callable[[str], str]

UnicodeForm = Literal["NFC", "NFD", "NFKC", "NFKD"]
_UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")


def _unicode_form(form: UnicodeForm) -> Normalize:
    def normalize(text: str) -> str:
        # Skip the work for the common already-normalized case (cheap check in C).
        return text if unicodedata.is_normalized(form, text) else unicodedata.normalize(form, text)

    return normalize


def lowercase(text: str) -> str:
    """Per-character lowercase, as Rust's char::to_lowercase: no final-sigma rule, unlike str.lower."""
    if "\u03a3" not in text:
        return text.lower()  # the final-sigma rule is the only context-dependent mapping in str.lower
    return "".join(char.lower() for char in text)


def _sequence(steps: list[Normalize]) -> Normalize:
    def normalize(text: str) -> str:
        for step in steps:
            text = step(text)
        return text

    return normalize


def normalizer_from_config(config: dict[str, Any] | None) -> Normalize | None:
    """Build the normalizer described by tokenizer.json's "normalizer" entry (None: identity)."""
    if config is None:
        return None
    kind = config.get("type")
    if kind in _UNICODE_FORMS:
        return _unicode_form(cast(UnicodeForm, kind))
    if kind == "Lowercase":
        return lowercase
    if kind == "Sequence":
        steps = [normalizer_from_config(step) for step in config["normalizers"]]
        return _sequence([step for step in steps if step is not None])
    raise ValueError(f"unsupported normalizer type {kind!r} in tokenizer.json")
