"""The trained demo model (models/tiny-qwen35) in the page: its greedy text equals transformers'.

A random checkpoint's greedy output is noise, so a subtle export bug can keep it "matching" only by
luck of near-ties being absent; the trained model's continuation is readable and long, and any drift
in the fp32 wasm path changes it. The page stops at the eos ids [2, 0]: both sides are compared up
to the first eos (the page's `tokens` leave the eos out; transformers' keep it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from playwright.sync_api import expect
from tokenizers import Tokenizer
from transformers import Qwen3_5ForCausalLM

from devtools.train_tiny.evaluate import (
    CONTINUATION_PROMPT,
    SAMPLE_NEW_TOKENS,
    TOOL_QUESTION,
    chat_prompt,
    greedy_sample,
    tool_prompt,
)
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving
from tests.browser.pages import READY_TIMEOUT_MS, SCREENSHOT_DIR, WatchedPage, open_page, watch

pytestmark = pytest.mark.browser

CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "tiny-qwen35"
BUNDLE_NAME = "tiny-qwen35"
EOS_IDS = (2, 0)
PROMPTS = {
    "continuation": CONTINUATION_PROMPT,
    "chat-template-text": chat_prompt("What does json.dumps do?"),
    "tool-call": tool_prompt(TOOL_QUESTION),  # the demo tools listed: the reply is a calculator call
}


def before_first_eos(tokens: list[int]) -> list[int]:
    for index, token in enumerate(tokens):
        if token in EOS_IDS:
            return tokens[:index]
    return tokens


@pytest.fixture(scope="module")
def trained_model() -> tuple[Qwen3_5ForCausalLM, Tokenizer]:
    model = Qwen3_5ForCausalLM.from_pretrained(CHECKPOINT, dtype=torch.float32).eval()
    return model, Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json"))


@pytest.fixture(scope="module")
def trained_site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from qwen35web.export.pipeline import ExportOptions, run_export

    bundle = tmp_path_factory.mktemp("trained") / "fp32-fused"
    run_export(ExportOptions(CHECKPOINT, bundle, ops="fused", dtype="fp32"))
    site = tmp_path_factory.mktemp("trained-web") / "site"
    build_site(SiteSpec(site, [(BUNDLE_NAME, bundle)], {BUNDLE_NAME: "Trained tiny model (test)."}))
    with serving(site) as url:
        yield url


@pytest.fixture(scope="module")
def trained_wasm_page(browser, trained_site_url: str) -> Iterator[WatchedPage]:
    watched = open_page(browser, trained_site_url, "wasm")
    yield watched
    watched.page.context.close()


def test_page_serves_the_trained_model(trained_wasm_page: WatchedPage) -> None:
    assert trained_wasm_page.ready() == {"backend": "wasm", "model": BUNDLE_NAME}
    trained_wasm_page.assert_clean()


@pytest.mark.parametrize("prompt", list(PROMPTS.values()), ids=list(PROMPTS))
def test_greedy_continuation_equals_transformers(
    trained_wasm_page: WatchedPage, trained_model, prompt: str
) -> None:
    model, tokenizer = trained_model
    page = trained_wasm_page.page
    trained_wasm_page.ready()
    assert page.evaluate("text => app.tokenize(text)", prompt) == tokenizer.encode(prompt).ids
    expected = greedy_sample(model, tokenizer, prompt, SAMPLE_NEW_TOKENS)["token_ids"]
    result = page.evaluate(
        "options => app.generate(options)",
        {"prompt": prompt, "maxNewTokens": SAMPLE_NEW_TOKENS, "greedy": True},
    )
    # Exact equality after the cut: a page that ran past transformers' eos would be longer.
    assert before_first_eos(result["tokens"]) == before_first_eos(expected), (
        f"page: {result['text']!r}\ntransformers: {tokenizer.decode(expected, skip_special_tokens=False)!r}"
    )
    reached_eos = any(token in EOS_IDS for token in expected)
    assert result["stopReason"] == ("eos" if reached_eos else "max_new_tokens"), result["stopReason"]
    trained_wasm_page.assert_clean()


def test_the_demo_model_calls_a_demo_tool_unforced_in_the_page(browser, trained_site_url: str) -> None:
    """The person's path: the Demo tools switch on, a question typed, Send. The model calls the
    calculator on its own (nothing forced), the page runs it, shows the call folded above the
    answer, and the model answers after the result."""
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    context.set_default_timeout(READY_TIMEOUT_MS)
    watched = watch(context, trained_site_url)
    page = watched.page
    page.goto(f"{trained_site_url}?backend=wasm&tools=1")
    page.evaluate("app.chatReady")
    page.click(".settings-panel summary")
    page.check("#greedy")
    page.evaluate("document.querySelector('.settings-panel').open = false")
    page.fill("#prompt", TOOL_QUESTION)
    page.click("#generate")
    page.wait_for_selector("#generate:not([disabled])")  # every round of the turn is over
    expect(page.locator("#error")).to_be_hidden()
    stats = page.evaluate("app.lastTurn()")
    assert stats["toolCalls"] >= 1 and stats["rounds"] >= 2, stats
    messages = page.evaluate("app.chat().messages")
    assert messages[1]["tool_calls"][0]["function"]["name"] == "calculator"
    assert messages[2]["role"] == "tool" and messages[-1]["role"] == "assistant"
    assert messages[-1]["content"].strip()  # an answer after the result
    call = page.locator(".turn.assistant details.tool-call").first
    expect(call.locator("summary")).to_have_text("Tool call: calculator")
    expect(call).not_to_have_attribute("open", "")  # folded
    call.evaluate("d => (d.open = true)")  # opened for the picture: its arguments and result
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "demo-model-tool-call.png"))
    watched.assert_clean()
    context.close()
