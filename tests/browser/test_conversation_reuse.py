"""State reuse in the page, on wasm and WebGPU: a conversation sent whole each turn prefills only
what is new, and every turn gives exactly the tokens a fresh native prefill of it gives.

On WebGPU the kept states are the model's own output tensors, left on the GPU (no copy, no
download); the leak check counts them as held.
"""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qwen35web.runtime.sampling import SamplingParams
from tests.browser.pages import WatchedPage, open_page

pytestmark = pytest.mark.browser

USER_TURNS = ["Hello there", "What is json?", "And pathlib?"]
MAX_NEW_TOKENS = 6  # WebGPU runs on SwiftShader here: few tokens
SEED = 21


@pytest.fixture(scope="module", params=["wasm", "webgpu"])
def chat_page(request, browser, base_url: str):
    watched = open_page(browser, base_url, request.param, "&prefillChunk=8")
    yield watched
    watched.page.context.close()


def _native_fresh(bundle: Path, conversations: list[list[dict]], seeds: list[int]) -> list[list[int]]:
    """Each conversation's reply from a runtime that keeps no state (a fresh prefill every time)."""

    async def run() -> list[list[int]]:
        from qwen35web.runtime.native.open_bundle import open_native

        runtime = await open_native(bundle, kept_states_budget=0)
        try:
            replies = []
            for messages, seed in zip(conversations, seeds, strict=True):
                params = SamplingParams(temperature=1.0, seed=seed, max_new_tokens=MAX_NEW_TOKENS)
                replies.append((await runtime.generate(runtime.prompt(messages=messages).ids, params)).tokens)
            return replies
        finally:
            await runtime.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_each_turn_prefills_only_what_is_new(chat_page: WatchedPage, export_bundle, browser_report) -> None:
    chat_page.ready()
    messages: list[dict] = [{"role": "system", "content": "Be brief."}]
    sent, results = [], []
    for turn, text in enumerate(USER_TURNS):
        messages.append({"role": "user", "content": text})
        sent.append(list(messages))
        options = {
            "messages": messages,
            "chat": True,
            "temperature": 1.0,
            "seed": SEED + turn,
            "maxNewTokens": MAX_NEW_TOKENS,
        }
        result = chat_page.page.evaluate("options => app.generate(options)", options)
        results.append(result)
        messages.append({"role": "assistant", "content": result["text"]})
    stats = chat_page.page.evaluate("app.stats()")
    browser_report[f"{chat_page.backend}_conversation_reuse"] = [
        {key: r[key] for key in ("promptTokens", "reusedTokens", "prefilledTokens", "prefillMs")}
        for r in results
    ] + [stats]

    expected = _native_fresh(export_bundle("text", "fused"), sent, [SEED + i for i in range(len(sent))])
    assert [r["tokens"] for r in results] == expected
    assert results[0]["reusedTokens"] == 0
    for previous, result in itertools.pairwise(results):
        assert result["reusedTokens"] + result["prefilledTokens"] == result["promptTokens"]
        assert result["reusedTokens"] >= previous["promptTokens"]  # at least the last prompt is kept
    assert stats["keptStates"] > 0 and stats["keptBytes"] > 0
    assert stats["keepMs"] < 50 * stats["keptStates"]  # bookkeeping, not copies
    assert stats["liveTensors"] == stats["heldTensors"], stats  # kept states are held, nothing leaks
    chat_page.assert_clean()
