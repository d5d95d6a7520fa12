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
from tests.browser.pages import WatchedPage, open_page

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
