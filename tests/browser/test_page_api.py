"""window.app beyond numerics (wasm): the tokenizer in Pyodide, chat templates, readable errors."""

from __future__ import annotations

from typing import cast

import pytest
from tokenizers import Tokenizer as HFTokenizer
from transformers import AutoTokenizer

from tests.browser.pages import WatchedPage
from tests.browser.references import hf_greedy
from tests.runtime.tokenizer.corpus import CORPUS

pytestmark = pytest.mark.browser


def _rejection(watched: WatchedPage, script: str, arg: object = None) -> str:
    """The message a rejected app call gives (the script returns the promise)."""
    return watched.page.evaluate(f"arg => ({script}).then(() => 'resolved', e => e.message)", arg)


def test_tokenizer_matches_hf_on_corpus(wasm_page: WatchedPage, export_bundle) -> None:
    wasm_page.ready()
    reference = HFTokenizer.from_file(str(export_bundle("text", "fused") / "tokenizer.json"))
    ids = wasm_page.page.evaluate("texts => Promise.all(texts.map(t => app.tokenize(t)))", CORPUS)
    mismatches = [
        text
        for text, got in zip(CORPUS, ids, strict=True)
        if got != reference.encode(text, add_special_tokens=False).ids
    ]
    assert mismatches == []
    wasm_page.assert_clean()


def test_chat_mode_renders_the_bundle_template(wasm_page: WatchedPage, tiny_reference, tiny_text_dir) -> None:
    """Chat prompts go through jinja2 inside Pyodide and must give transformers' template ids."""
    wasm_page.ready()
    messages = [{"role": "user", "content": "What is a tuple?"}]
    template_ids = AutoTokenizer.from_pretrained(tiny_text_dir).apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    expected_ids = cast(list[int], template_ids)
    result = wasm_page.page.evaluate(
        "m => app.generate({prompt: m[0].content, chat: true, maxNewTokens: 6, greedy: true})", messages
    )
    assert result["promptTokens"] == len(expected_ids)
    assert result["tokens"] == hf_greedy(tiny_reference, expected_ids, 6, [2])
    history = [
        *messages,
        {"role": "assistant", "content": result["text"]},
        {"role": "user", "content": "And?"},
    ]
    follow_up = wasm_page.page.evaluate(
        "m => app.generate({messages: m, chat: true, maxNewTokens: 2, greedy: true})", history
    )
    assert follow_up["promptTokens"] > result["promptTokens"] + len(result["tokens"])
    wasm_page.assert_clean()


@pytest.mark.parametrize(
    ("script", "arg", "message"),
    [
        ("app.generate({prompt: ''})", None, "the prompt is empty"),
        ("app.generate({prompt: 'x', temperature: -1})", None, "temperature must be > 0, got -1"),
        (
            "app.generate({prompt: 'x', maxNewTokens: 0})",
            None,
            "max_new_tokens must be an integer >= 1, got 0",
        ),
        ("app.logits(arg)", [1, 99999], "token ids must lie in [0, 512)"),
        ("app.logits(arg)", [], "the prompt is empty"),
        (
            "app.generate({prompt: 'a\\uD800b', maxNewTokens: 2})",
            None,
            "the prompt is not valid Unicode text (invalid UTF-8 or a lone surrogate)",
        ),
        ("app.generate({prompt: 'x', topP: NaN})", None, "topP must be a finite number, got NaN"),
        (
            "app.generate({prompt: 'x', minNewTokens: -1})",
            None,
            "min_new_tokens must be an integer >= 0, got -1",
        ),
    ],
    ids=[
        "empty-prompt",
        "bad-temperature",
        "zero-tokens",
        "id-out-of-vocab",
        "no-ids",
        "lone-surrogate",
        "nan",
        "negative-min-tokens",
    ],
)
def test_bad_requests_reject_with_one_readable_sentence(
    wasm_page: WatchedPage, script: str, arg: object, message: str
) -> None:
    wasm_page.ready()
    got = _rejection(wasm_page, script, arg)
    assert got == message
    wasm_page.assert_clean()


def test_unknown_model_rejects_ready_readably(browser, base_url: str) -> None:
    from tests.browser.pages import open_page

    watched = open_page(browser, base_url, "wasm", "&model=nope")
    try:
        message = watched.page.evaluate("app.ready.then(() => 'resolved', e => e.message)")
        assert message == 'unknown model "nope" (this site has: tiny-random)'
        assert watched.page.locator("#error").inner_text().startswith("Could not load the model")
        assert watched.foreign_requests == []
    finally:
        watched.page.context.close()
