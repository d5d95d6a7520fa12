"""Regenerate `unicode_data.py` from the regex engine that Hugging Face `tokenizers` uses (Oniguruma).

Why not `unicodedata`: parity with `tokenizers` means parity with *its* Unicode version (Oniguruma in
tokenizers 0.23 knows Unicode 16.0), while CPython 3.11 ships 14.0 and Pyodide's CPython 3.14 ships 16.0.
A table frozen at the engine's version gives the same token ids everywhere. The probe asks the engine
itself: `Replace(\\P{Xx} -> "")` over every code point leaves exactly the members of class Xx.

Run (needs `tokenizers`, a dev dependency; the runtime never imports this module):
    python -m qwen35web.runtime.tokenizer._generate_unicode_tables
"""

from __future__ import annotations

import logging
import sys
from importlib import metadata
from pathlib import Path

from qwen35web.runtime.tokenizer.unicode_classes import (
    CATEGORY_CODES,
    GENERAL_CATEGORIES,
    encode_ranges,
    encode_runs,
    ranges_from_code_points,
)

logger = logging.getLogger(__name__)

MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)
_LINE_WIDTH = 100


def _all_scalar_values() -> str:
    return "".join(chr(cp) for cp in range(MAX_CODE_POINT + 1) if cp not in _SURROGATES)


def probe_members(pattern_for_non_members: str, text: str) -> set[int]:
    """Code points of `text` that the engine's regex `pattern_for_non_members` does not match."""
    from tokenizers import Regex, normalizers

    kept = normalizers.Replace(Regex(pattern_for_non_members), "").normalize_str(text)
    return {ord(ch) for ch in kept}


def probe_categories(text: str) -> list[str]:
    """General category of each character of `text`, as the engine sees it.

    One pass: a sequence of Replace steps turns each member of category k into the private-use marker
    U+E000+k. Private use (Co) goes first so that no later step can match an earlier step's marker.
    """
    from tokenizers import Regex, normalizers

    order = ["Co", *(name for name in GENERAL_CATEGORIES if name not in ("Co", "Cs"))]
    steps = [normalizers.Replace(Regex(rf"\p{{{name}}}"), chr(0xE000 + k)) for k, name in enumerate(order)]
    marked = normalizers.Sequence(steps).normalize_str(text)
    if len(marked) != len(text):
        raise RuntimeError("category probe changed the text length")
    try:
        return [order[ord(marker) - 0xE000] for marker in marked]
    except IndexError as error:
        raise RuntimeError("a code point is in no general category") from error


def probe_tables() -> tuple[list[tuple[int, str]], list[tuple[int, int]], list[int]]:
    """(category runs covering 0..0x10FFFF, extra \\w ranges beyond L/M/Nd/Pc, \\s code points)."""
    text = _all_scalar_values()
    category_of = dict(zip(map(ord, text), probe_categories(text), strict=True))
    runs: list[tuple[int, str]] = []
    for cp in range(MAX_CODE_POINT + 1):
        name = "Cs" if cp in _SURROGATES else category_of.get(cp, "Cn")
        if not runs or runs[-1][1] != name:
            runs.append((cp, name))
    word = probe_members(r"\W", text)
    by_category = {cp for cp, name in category_of.items() if name[0] in "LM" or name in ("Nd", "Pc")}
    if not by_category <= word:
        raise RuntimeError("\\w is expected to include every L, M, Nd and Pc code point")
    white_space = sorted(probe_members(r"\S", text))
    return runs, ranges_from_code_points(sorted(word - by_category)), white_space


def _string_tuple(name: str, text: str) -> str:
    """`NAME = (lines...)`: a tuple of string lines, one string when joined, laid out as ruff would."""
    lines = [text[i : i + _LINE_WIDTH] for i in range(0, len(text), _LINE_WIDTH)]
    if len(lines) == 1 and len(name) + len(text) + 10 <= 110:
        return f'{name} = ("{text}",)\n'
    body = "\n".join(f'    "{line}",' for line in lines)
    return f"{name} = (\n{body}\n)\n"


def render_module(runs: list[tuple[int, str]], word_extra: list[tuple[int, int]], spaces: list[int]) -> str:
    versions = f"tokenizers {metadata.version('tokenizers')}"
    return (
        f'"""Unicode tables frozen from the regex engine of {versions}; generated, do not edit.\n\n'
        "Regenerate with `python -m qwen35web.runtime.tokenizer._generate_unicode_tables`; the format is\n"
        'described in unicode_classes.py.\n"""\n\n'
        f'SOURCE = "{versions} (Oniguruma)"\n\n'
        + _string_tuple("CATEGORY_RUNS", encode_runs(runs))
        + "\n"
        + _string_tuple("WORD_EXTRA_RANGES", encode_ranges(word_extra))
        + "\n"
        + _string_tuple("WHITE_SPACE_RANGES", encode_ranges(ranges_from_code_points(spaces)))
    )


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    runs, word_extra, spaces = probe_tables()
    target = Path(__file__).with_name("unicode_data.py")
    target.write_text(render_module(runs, word_extra, spaces), encoding="utf-8")
    logger.info("wrote %s: %d category runs (codes %s)", target, len(runs), "".join(CATEGORY_CODES.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
