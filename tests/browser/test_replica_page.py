"""The page on the replica of the published Qwen3.5-0.8B repository (devtools.published_replica): the
real vocabulary in Pyodide, the Thinking toggle at the template's default (off: the 0.8B template thinks
only when asked), and a reply that ends at <|im_end|> with the tokens the native runtime gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving
from tests.browser.pages import READY_TIMEOUT_MS, watch
from tests.run_async import run_async

pytestmark = pytest.mark.browser

MODEL = "qwen3.5-0.8b-replica"
PROMPT = "Tell me a story."
MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def replica_url(tmp_path_factory: pytest.TempPathFactory, replica_export) -> Iterator[str]:
    site = tmp_path_factory.mktemp("replica-web") / "site"
    note = "Replica of the published Qwen3.5-0.8B files, random weights (test)."
    build_site(SiteSpec(site, [(MODEL, replica_export("0.8b"))], {MODEL: note}))
    with serving(site) as url:
        yield url


def _native_tokens(bundle: Path) -> list[int]:
    async def go() -> list[int]:
        runtime = await open_native(bundle)
        try:
            prompt = runtime.prompt(PROMPT, chat=True)  # enable_thinking not passed, as the page
            params = SamplingParams(greedy=True, max_new_tokens=MAX_NEW_TOKENS)
            return (await runtime.generate(prompt.ids, params)).tokens
        finally:
            await runtime.close()

    return run_async(go())


def test_the_page_starts_at_the_template_default_and_stops_at_the_turn_end(
    browser, replica_url: str, replica_export
) -> None:
    context = browser.new_context()
    context.set_default_timeout(READY_TIMEOUT_MS * 2)  # the real vocabulary's tokenizer.json is 33 MB
    try:
        watched = watch(context, replica_url)
        page = watched.page
        page.goto(f"{replica_url}?backend=wasm")
        page.evaluate("app.chatReady")
        expect(page.locator("#thinking")).to_be_visible()
        assert not page.is_checked("#thinking")
        page.click(".settings-panel summary")
        page.check("#greedy")
        page.fill("#max-new-tokens", str(MAX_NEW_TOKENS))
        page.fill("#prompt", PROMPT)
        page.click("#generate")
        page.wait_for_selector("#generate:not([disabled])")
        turn = page.evaluate("app.lastTurn()")
        assert turn["stopReason"] == "eos", turn
        assert turn["tokens"] == _native_tokens(replica_export("0.8b"))
        watched.assert_clean()
    finally:
        context.close()
