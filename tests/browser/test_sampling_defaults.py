"""The page's sampling settings start from the bundle's `generation` section (its checkpoint's
generation_config.json, or the model card's values: the source is shown), penalties included, and keep
the page's own values where the bundle recommends none; a reasoning budget set in the page closes the
reasoning and the model answers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from qwen35web.export.card_sampling import card_source
from qwen35web.runtime.sampling import DEFAULT_NUDGE
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving
from tests.browser.pages import MODEL_NAME, READY_TIMEOUT_MS, watch
from tests.runtime.test_reasoning_budget import THINKING_TEMPLATE

pytestmark = pytest.mark.browser

RECOMMENDED = {
    "temperature": 0.6,
    "top_k": 7,
    "top_p": 0.93,
    "do_sample": False,
    "presence_penalty": 1.5,
    "eos_token_ids": [2],
    "source": card_source("thinking"),
}


@pytest.fixture(scope="module")
def recommending_url(tmp_path_factory: pytest.TempPathFactory, export_bundle) -> Iterator[str]:
    bundle = tmp_path_factory.mktemp("defaults-bundle") / "bundle"
    shutil.copytree(export_bundle("text", "fused"), bundle)
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["generation"] = {**manifest.get("generation", {}), **RECOMMENDED}
    manifest["chat_template"] = THINKING_TEMPLATE  # the generation prompt opens the reasoning
    manifest_path.write_text(json.dumps(manifest, indent=2))
    site = tmp_path_factory.mktemp("defaults-web") / "site"
    build_site(SiteSpec(site, [(MODEL_NAME, bundle)]))
    with serving(site) as url:
        yield url


def _settings(browser, url: str, budget_turn: bool = False) -> tuple[dict, str]:
    context = browser.new_context()
    context.set_default_timeout(READY_TIMEOUT_MS)
    watched = watch(context, url)
    page = watched.page
    page.goto(f"{url}?backend=wasm")
    page.evaluate("app.chatReady")
    values = {
        "temperature": page.input_value("#temperature"),
        "topK": page.input_value("#top-k"),
        "topP": page.input_value("#top-p"),
        "presencePenalty": page.input_value("#presence-penalty"),
        "greedy": page.is_checked("#greedy"),
        "facts": page.evaluate("app.info().facts.generation"),
    }
    source = page.locator("#settings-source").text_content() or ""
    if budget_turn:  # a turn with a reasoning budget, the bundle's penalties applied
        page.click(".settings-panel summary")
        page.fill("#max-new-tokens", "30")
        page.fill("#reasoning-budget", "5")
        page.fill("#prompt", "What is a list?")
        page.click("#generate")
        page.wait_for_selector("#generate:not([disabled])")
        values["turn"] = page.evaluate("app.lastTurn()")
    watched.assert_clean()
    context.close()
    return values, source


def test_the_form_starts_from_the_bundle_defaults(browser, recommending_url: str) -> None:
    values, source = _settings(browser, recommending_url, budget_turn=True)
    assert values["facts"] == {
        "temperature": 0.6,
        "topK": 7,
        "topP": 0.93,
        "presencePenalty": 1.5,
        "greedy": True,
    }
    assert (values["temperature"], values["topK"], values["topP"]) == ("0.6", "7", "0.93")
    assert values["presencePenalty"] == "1.5"
    assert values["greedy"] is True  # do_sample: false
    assert "model card" in source and "presencePenalty" in source
    turn = values["turn"]
    assert turn["reasoningCut"] is True and turn["stopReason"] != "cancelled"
    assert turn["reasoning"].endswith(DEFAULT_NUDGE)  # the fed sentence, shown as reasoning
    assert len(turn["tokens"]) > 5  # the closing tokens, then the answer


def test_without_recommendations_the_page_keeps_its_own(browser, base_url: str, export_bundle) -> None:
    manifest = json.loads((export_bundle("text", "fused") / "manifest.json").read_text())
    generation = manifest.get("generation", {})
    assert not {"temperature", "top_k", "top_p", "do_sample"} & set(generation)  # the premise
    values, source = _settings(browser, base_url)
    assert values["facts"] == {}
    assert (values["temperature"], values["topK"], values["topP"]) == ("0.7", "20", "0.8")
    assert values["presencePenalty"] == "0"
    assert values["greedy"] is False
    assert "recommends no sampling settings" in source


def test_a_request_without_greedy_takes_the_bundles_do_sample(browser, recommending_url: str) -> None:
    """The module leaves out what the caller left out: do_sample false then means greedy, whatever seed."""
    context = browser.new_context()
    context.set_default_timeout(READY_TIMEOUT_MS)
    watched = watch(context, recommending_url)
    page = watched.page
    page.goto(f"{recommending_url}?backend=wasm")
    page.evaluate("app.chatReady")
    run = "o => app.generate({prompt: 'The module', maxNewTokens: 12, reasoningBudget: null, ...o})"
    greedy = page.evaluate(run, {"greedy": True})["tokens"]
    left_out = [page.evaluate(run, {"seed": seed})["tokens"] for seed in (1, 2, 3)]
    hot = [{"greedy": False, "temperature": 1.5, "seed": seed} for seed in (1, 2, 3)]
    sampled = [page.evaluate(run, options)["tokens"] for options in hot]
    assert left_out == [greedy] * 3
    assert any(tokens != greedy for tokens in sampled)  # the premise: sampling would show
    watched.assert_clean()
    context.close()
