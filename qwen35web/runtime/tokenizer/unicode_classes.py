"""Unicode character classes (`\\p{L}`, `\\s`, `\\w`, ...) as sorted code-point ranges, without `unicodedata`.

The data lives in `unicode_data.py`, frozen from the regex engine of Hugging Face `tokenizers` so that the
classes agree with it whatever Unicode version the running Python ships (see _generate_unicode_tables).

Storage format (compact, so that importing it in Pyodide is cheap):
- CATEGORY_RUNS: concatenated runs covering U+0000..U+10FFFF; each run is one category code character
  (CATEGORY_CODES) followed by the base-36 distance of the run's start from the previous run's start.
- WORD_EXTRA_RANGES: the code points of `\\w` that are not L, M, Nd or Pc (Nl, circled letters, joiners),
  as comma-separated `gap.length` pairs in base 36, gap counted from the end of the previous range.
- WHITE_SPACE_RANGES: `\\s` (Unicode White_Space; not Python's `str.isspace` set), in the same format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache

Range = tuple[int, int]  # inclusive (first, last) code points

MAX_CODE_POINT = 0x10FFFF

GENERAL_CATEGORIES = (
    *("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No"),
    *("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"),
    *("Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cn", "Cs"),
)
_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%"
CATEGORY_CODES = dict(zip(GENERAL_CATEGORIES, _CODE_ALPHABET, strict=True))
_CATEGORY_OF_CODE = {code: name for name, code in CATEGORY_CODES.items()}

# Long names and aliases accepted by Oniguruma for general categories and the few other properties we
# can answer from our data. Keys are loose-matched (case, spaces, '-' and '_' ignored) like Oniguruma.
_ALIASES = {
    "letter": "L", "casedletter": "LC", "l&": "LC", "uppercaseletter": "Lu", "lowercaseletter": "Ll",
    "titlecaseletter": "Lt", "modifierletter": "Lm", "otherletter": "Lo",
    "mark": "M", "combiningmark": "M", "nonspacingmark": "Mn", "spacingmark": "Mc", "enclosingmark": "Me",
    "number": "N", "decimalnumber": "Nd", "digit": "Nd", "letternumber": "Nl", "othernumber": "No",
    "punctuation": "P", "punct": "P", "connectorpunctuation": "Pc", "dashpunctuation": "Pd",
    "openpunctuation": "Ps", "closepunctuation": "Pe", "initialpunctuation": "Pi",
    "finalpunctuation": "Pf", "otherpunctuation": "Po",
    "symbol": "S", "mathsymbol": "Sm", "currencysymbol": "Sc", "modifiersymbol": "Sk", "othersymbol": "So",
    "separator": "Z", "spaceseparator": "Zs", "lineseparator": "Zl", "paragraphseparator": "Zp",
    "other": "C", "control": "Cc", "cntrl": "Cc", "format": "Cf", "privateuse": "Co", "unassigned": "Cn",
    "surrogate": "Cs", "whitespace": "space", "space": "space", "word": "word", "any": "any",
    "assigned": "assigned", "xdigit": "xdigit", "asciihexdigit": "xdigit", "ascii": "ascii",
}  # fmt: skip


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if value == 0:
            return out


def encode_runs(runs: list[tuple[int, str]]) -> str:
    previous = 0
    parts = []
    for start, name in runs:
        parts.append(CATEGORY_CODES[name] + _base36(start - previous))
        previous = start
    return "".join(parts)


def decode_runs(text: str) -> list[tuple[int, str]]:
    start = 0
    runs = []
    for code, delta in re.findall(r"([^0-9a-z])([0-9a-z]+)", text):
        start += int(delta, 36)
        runs.append((start, _CATEGORY_OF_CODE[code]))
    return runs


def encode_ranges(ranges: list[Range]) -> str:
    previous_end = 0
    parts = []
    for first, last in ranges:
        parts.append(f"{_base36(first - previous_end)}.{_base36(last - first + 1)}")
        previous_end = last + 1
    return ",".join(parts)


def decode_ranges(text: str) -> list[Range]:
    previous_end = 0
    ranges = []
    for item in filter(None, text.split(",")):
        gap, length = (int(part, 36) for part in item.split("."))
        first = previous_end + gap
        previous_end = first + length
        ranges.append((first, previous_end - 1))
    return ranges


def ranges_from_code_points(code_points: list[int]) -> list[Range]:
    """Sorted, distinct code points -> maximal inclusive ranges."""
    ranges: list[Range] = []
    for cp in code_points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges


def union(*range_lists: list[Range] | tuple[Range, ...]) -> tuple[Range, ...]:
    merged: list[Range] = []
    for first, last in sorted(r for ranges in range_lists for r in ranges):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return tuple(merged)


def complement(ranges: tuple[Range, ...]) -> tuple[Range, ...]:
    out: list[Range] = []
    next_free = 0
    for first, last in union(ranges):
        if first > next_free:
            out.append((next_free, first - 1))
        next_free = last + 1
    if next_free <= MAX_CODE_POINT:
        out.append((next_free, MAX_CODE_POINT))
    return tuple(out)


@lru_cache(maxsize=1)
def _category_table() -> dict[str, tuple[Range, ...]]:
    from qwen35web.runtime.tokenizer import unicode_data

    runs = decode_runs("".join(unicode_data.CATEGORY_RUNS))
    table: dict[str, list[Range]] = {name: [] for name in GENERAL_CATEGORIES}
    ends = [start - 1 for start, _ in runs[1:]] + [MAX_CODE_POINT]
    for (start, name), end in zip(runs, ends, strict=True):
        table[name].append((start, end))
    return {name: tuple(ranges) for name, ranges in table.items()}


def _normalise_property_name(name: str) -> str:
    return re.sub(r"[\s_-]", "", name).lower()


def _property_key(name: str) -> str | None:
    loose = _normalise_property_name(name)
    short_names = {category.lower(): category for category in GENERAL_CATEGORIES}
    short_names.update({major.lower(): major for major in "LMNPSZC"})
    short_names["lc"] = "LC"
    return _ALIASES.get(loose) or short_names.get(loose)


@cache
def property_ranges(name: str) -> tuple[Range, ...]:
    """Ranges of the Oniguruma property `\\p{name}`; ValueError for properties we do not carry."""
    categories = _category_table()
    key = _property_key(name)
    if key in categories:
        return categories[key]
    if key == "LC":
        return union(categories["Lu"], categories["Ll"], categories["Lt"])
    if key is not None and len(key) == 1:
        return union(*(ranges for category, ranges in categories.items() if category[0] == key))
    others: dict[str, Callable[[], tuple[Range, ...]]] = {
        "space": white_space_ranges,
        "word": word_ranges,
        "any": lambda: ((0, MAX_CODE_POINT),),
        "assigned": lambda: complement(categories["Cn"]),
        "xdigit": lambda: ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
        "ascii": lambda: ((0, 0x7F),),
    }
    if key in others:
        return others[key]()
    raise ValueError(f"unsupported Unicode property in pre-tokenizer regex: \\p{{{name}}}")


@lru_cache(maxsize=1)
def white_space_ranges() -> tuple[Range, ...]:
    """Oniguruma's `\\s`: Unicode White_Space (no U+001C..U+001F, unlike Python's `\\s`)."""
    from qwen35web.runtime.tokenizer import unicode_data

    return tuple(decode_ranges("".join(unicode_data.WHITE_SPACE_RANGES)))


@lru_cache(maxsize=1)
def word_ranges() -> tuple[Range, ...]:
    """Oniguruma's `\\w`: L, M, Nd, Pc and the extra word characters the table lists."""
    from qwen35web.runtime.tokenizer import unicode_data

    categories = _category_table()
    extra = decode_ranges("".join(unicode_data.WORD_EXTRA_RANGES))
    base = [categories[name] for name in GENERAL_CATEGORIES if name[0] in "LM" or name in ("Nd", "Pc")]
    return union(*base, extra)


def digit_ranges() -> tuple[Range, ...]:
    """Oniguruma's `\\d` (Unicode decimal digits, Nd)."""
    return _category_table()["Nd"]
