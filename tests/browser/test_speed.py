"""Decode speed and the Python share of a decode step in the page (wasm, tiny model), recorded in
build/browser-report.json. Timed after a warm-up: V8 tiers up Pyodide and ORT's wasm over the
first few hundred tokens. The floor only catches a pathological regression."""

from __future__ import annotations

import statistics

import pytest

from tests.browser.pages import WatchedPage

pytestmark = pytest.mark.browser

TOKENS = 200
WARM_UP_RUNS = 3
TIMED_RUNS = 3
MIN_TOKENS_PER_SECOND = 20  # measured ~300-400 on 2 cores; far below it means something is wrong


def test_wasm_decode_speed_and_python_share(wasm_page: WatchedPage, browser_report) -> None:
    wasm_page.ready()
    request = {"prompt": "Hello world", "maxNewTokens": TOKENS, "greedy": True}
    runs = [
        wasm_page.page.evaluate("r => app.generate(r)", request) for _ in range(WARM_UP_RUNS + TIMED_RUNS)
    ]
    timed = runs[WARM_UP_RUNS:]
    assert all(len(r["tokens"]) == TOKENS for r in timed)
    speed = statistics.median(r["decodeTokensPerSecond"] for r in timed)
    python_share = statistics.median(r["pythonShare"] for r in timed)
    browser_report["wasm_tiny_decode"] = {
        "tokens_per_second": round(speed, 1),
        "ms_per_token": round(1000 / speed, 3),
        "python_share": round(python_share, 3),
        "prefill_ms": statistics.median(r["prefillMs"] for r in timed),
        "warm_up_tokens_per_second": [round(r["decodeTokensPerSecond"], 1) for r in runs[:WARM_UP_RUNS]],
    }
    assert speed > MIN_TOKENS_PER_SECOND
    assert 0 < python_share < 1
    wasm_page.assert_clean()
