"""tokenizer.json features we do not implement are refused with a ValueError that names them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qwen35web.runtime.tokenizer import Tokenizer
from tests.runtime.tokenizer.conftest import TokenizerPair


def _with(document: dict[str, Any], path: tuple[str, ...], value: Any) -> str:
    changed = json.loads(json.dumps(document))
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(changed)


CASES = [
    (("model", "type"), "WordPiece", "model type 'WordPiece'"),
    (("model", "dropout"), 0.1, "dropout"),
    (("pre_tokenizer",), {"type": "Metaspace", "replacement": "▁"}, "pre-tokenizer type 'Metaspace'"),
    (("pre_tokenizer",), {"type": "Split", "pattern": {"Regex": r"\p{Han}+"}, "behavior": "Isolated",
                          "invert": False}, r"\\p\{Han\}"),
    (("pre_tokenizer",), {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways",
                          "invert": False}, "behavior 'Sideways'"),
    (("normalizer",), {"type": "Precompiled", "precompiled_charsmap": ""}, "normalizer type 'Precompiled'"),
    (("decoder",), {"type": "WordPiece", "prefix": "##"}, "decoder type 'WordPiece'"),
    (("truncation",), {"max_length": 8, "strategy": "LongestFirst"}, "truncation"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "message"), CASES, ids=[case[2] for case in CASES])
def test_unsupported_feature_raises(gpt2_style_pair: TokenizerPair, path, value, message: str) -> None:
    document = json.loads(gpt2_style_pair.json_text)
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_json(_with(document, path, value))


def test_merge_with_unknown_token_raises(gpt2_style_pair: TokenizerPair) -> None:
    document = json.loads(gpt2_style_pair.json_text)
    document["model"]["merges"].append(["no-such", "token"])
    with pytest.raises(ValueError, match="missing from vocab"):
        Tokenizer.from_json(json.dumps(document))


def test_legacy_string_merges_are_accepted(gpt2_style_pair: TokenizerPair) -> None:
    document = json.loads(gpt2_style_pair.json_text)
    document["model"]["merges"] = [" ".join(pair) for pair in document["model"]["merges"]]
    legacy = Tokenizer.from_json(json.dumps(document))
    text = "Hello, world! abababab"
    assert legacy.encode(text) == gpt2_style_pair.ours.encode(text)
