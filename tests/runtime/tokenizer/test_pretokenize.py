"""Regex translation, Unicode classes and pre-tokenizers against `tokenizers`' own (Oniguruma) splitting."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Regex, pre_tokenizers

from qwen35web.runtime.tokenizer import unicode_data
from qwen35web.runtime.tokenizer.pretokenize import GPT2_PATTERN, ByteLevelPreTokenizer, SplitPreTokenizer
from qwen35web.runtime.tokenizer.regex_translate import compile_pattern
from qwen35web.runtime.tokenizer.unicode_classes import (
    decode_ranges,
    decode_runs,
    encode_ranges,
    encode_runs,
    ranges_from_code_points,
)
from tests.runtime.tokenizer.conftest import QWEN35_PATTERN
from tests.runtime.tokenizer.corpus import CORPUS

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
O200K_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
DEEPSEEK_LIKE_PATTERN = (
    r"\s?[A-Za-zµÀ-ÖØ-öø-ƺ]+|\p{N}{1,3}|[一-龥\u3040-ゟ゠-ヿ]+|[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+"
    r"|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
MODEL_PATTERNS = {
    "qwen3.5": QWEN35_PATTERN,
    "qwen2": QWEN2_PATTERN,
    "gpt2": GPT2_PATTERN,
    "llama3": LLAMA3_PATTERN,
    "o200k": O200K_PATTERN,
    "deepseek-like": DEEPSEEK_LIKE_PATTERN,
}
# Smaller patterns exercising the rest of the translator (escapes, flags, anchors, lookarounds, ...).
FEATURE_PATTERNS = {
    "class-escapes": r"\d+|\w+|\h|[^\s\w]|\s",
    "negated-escapes": r"\D\W?|\S\s*|\H{2}|[\W\d]+",
    "properties": r"\p{Lu}\p{Ll}*|\p{^L}+|\P{N}\p{Nd}|[\p{Sc}\p{Sm}]+|\p{Punct}|\p{Letter}+|\p{Zs}",
    "scoped-flags": r"(?i)ab|(?i:x)y|(?-i:Q)",
    "word-boundary": r"\bfoo\b|\Bar",
    "anchors": r"^\s+|\s+$|\A.|.\z",
    "quantifiers": r"a{2,}|b{,2}|(?:ab)+?c|x{1,3}?|[0-9]{2}",
    "lookarounds": r"(?<=a)b|(?<!c)d(?=e)|f(?!g)",
    "atomic-possessive": r"(?>a+)b|c*+d|e?+",
    "char-escapes": r"\x41|\x{263A}|\t\n|\u00e9|\x2e\.|[\x30-\x{39}]",
    "named-groups": r"(?<word>\p{L}+)-\k<word>|(?#comment)z",
    "backreference": r"(a)(b)\2|(\w)\3",
    "empty-matches": r"\s*|x*",
    "dot": r"a.c|.",
    "braces": r"a{2}|x{,2}|}+|{|q{1,}?|{a}",
    "class-edges": r"[]a]|[a-]x|[-b]|[\]\-\\]",
}
BEHAVIORS = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]
_OUR_BEHAVIOR = {
    "removed": "Removed",
    "isolated": "Isolated",
    "merged_with_previous": "MergedWithPrevious",
    "merged_with_next": "MergedWithNext",
    "contiguous": "Contiguous",
}
SHORT_TEXTS = [
    *CORPUS[:12],
    "aab aaa abab foo barfoo foobar foo-bar",
    "Aé1 2 x\u00a0y\x1cz AbcDef ABC abc 'S 'ſ 'Ll",
    "café-café ab\nx  y\t\n  \u263a9",
    "aaa}}}{ {a} xxx qq ]a- b- \\ x-",
    "",
    " ",
]
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def _hf_split(pattern: str, text: str, behavior: str = "isolated", invert: bool = False) -> list[str]:
    splitter = pre_tokenizers.Split(Regex(pattern), behavior=behavior, invert=invert)
    return [piece for piece, _ in splitter.pre_tokenize_str(text)]


def _our_split(pattern: str, text: str, behavior: str = "isolated", invert: bool = False) -> list[str]:
    return SplitPreTokenizer(pattern, _OUR_BEHAVIOR[behavior], invert).pre_tokenize([text])


def test_unicode_tables_match_the_engine_of_installed_tokenizers() -> None:
    # Fails when a tokenizers upgrade changes its Unicode version: regenerate unicode_data.py then.
    from qwen35web.runtime.tokenizer._generate_unicode_tables import probe_tables

    runs, word_extra, spaces = probe_tables()
    assert decode_runs("".join(unicode_data.CATEGORY_RUNS)) == runs
    assert decode_ranges("".join(unicode_data.WORD_EXTRA_RANGES)) == word_extra
    assert decode_ranges("".join(unicode_data.WHITE_SPACE_RANGES)) == ranges_from_code_points(spaces)
    assert decode_runs(encode_runs(runs)) == runs
    assert decode_ranges(encode_ranges(word_extra)) == word_extra


@pytest.mark.parametrize("name", list(MODEL_PATTERNS) + list(FEATURE_PATTERNS))
def test_split_matches_tokenizers_on_fixed_texts(name: str) -> None:
    pattern = {**MODEL_PATTERNS, **FEATURE_PATTERNS}[name]
    for text in SHORT_TEXTS:
        assert _our_split(pattern, text) == _hf_split(pattern, text), text


@pytest.mark.parametrize("behavior", BEHAVIORS)
@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("pattern", [r"\s+", r"-", r"\p{N}+|x", r"\s*"])
def test_split_behaviors_match_tokenizers(pattern: str, behavior: str, invert: bool) -> None:
    for text in [*SHORT_TEXTS, "--a--b-", "1 2  3x x"]:
        assert _our_split(pattern, text, behavior, invert) == _hf_split(pattern, text, behavior, invert), text


def _stratified_code_points() -> list[int]:
    """Every Latin-1 code point plus the first and last of each general-category run."""
    runs = decode_runs("".join(unicode_data.CATEGORY_RUNS))
    ends = [start - 1 for start, _ in runs[1:]] + [0x10FFFF]
    points = set(range(0x100))
    for (start, name), end in zip(runs, ends, strict=True):
        if name != "Cs":
            points.update((start, end))
    return sorted(points)


@pytest.mark.parametrize("name", ["qwen3.5", "gpt2", "o200k"])
def test_split_matches_tokenizers_on_every_character_class_boundary(name: str) -> None:
    # Each sampled character in contexts that exercise contractions, letters+marks, numbers, spaces.
    contexts = "'{c}a{c}{c} {c}1\n{c}\u0301'{c}\r\n 7{c}  "
    text = "".join(contexts.format(c=chr(cp)) for cp in _stratified_code_points())
    pattern = MODEL_PATTERNS[name]
    assert _our_split(pattern, text) == _hf_split(pattern, text)


@PROPERTY_SETTINGS
@given(text=st.text(max_size=80), name=st.sampled_from(sorted(MODEL_PATTERNS)))
def test_split_matches_tokenizers_on_generated_text(text: str, name: str) -> None:
    pattern = MODEL_PATTERNS[name]
    assert _our_split(pattern, text) == _hf_split(pattern, text)


@pytest.mark.parametrize("add_prefix_space", [False, True])
@pytest.mark.parametrize("use_regex", [False, True])
def test_byte_level_pre_tokenizer_matches_tokenizers(add_prefix_space: bool, use_regex: bool) -> None:
    reference = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=use_regex)
    ours = ByteLevelPreTokenizer(add_prefix_space=add_prefix_space, use_regex=use_regex)
    for text in CORPUS:
        assert ours.pre_tokenize([text]) == [piece for piece, _ in reference.pre_tokenize_str(text)], text


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(text=st.text(max_size=60))
def test_byte_level_pre_tokenizer_on_generated_text(text: str) -> None:
    reference = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    expected = [piece for piece, _ in reference.pre_tokenize_str(text)]
    assert ByteLevelPreTokenizer(add_prefix_space=True, use_regex=True).pre_tokenize([text]) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        r"\p{Han}",
        r"\G",
        r"\X+",
        r"[[:alpha:]]",
        r"[a[b]]",
        r"[a&&b]",
        r"\pL",
        r"a{2}+",
        r"(?u)x",
        r"\R",
        "(a",
    ],
)
def test_unsupported_regex_features_raise_value_error(pattern: str) -> None:
    with pytest.raises(ValueError, match="pre-tokenizer"):
        compile_pattern(pattern)


def test_python_and_oniguruma_white_space_differ_and_we_follow_oniguruma() -> None:
    assert re.fullmatch(r"\s", "\x1c")  # Python's \s: includes the information separators
    assert _our_split(r"\s+", "a\x1cb") == _hf_split(r"\s+", "a\x1cb") == ["a\x1cb"]


def test_first_use_cost_in_a_fresh_interpreter() -> None:
    # Import + building the Qwen3.5 pattern's classes + compiling it, measured in a new process.
    code = (
        "import time; t = time.perf_counter();"
        "from qwen35web.runtime.tokenizer.regex_translate import compile_pattern;"
        f"compile_pattern({QWEN35_PATTERN!r}).findall('warm up 123');"
        "print(time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(result.stdout) < 1.0
