"""Soak in the page (wasm): many decode steps and many generations leak no tensors and no JS heap.

`make test` runs the short form; `make soak` (SOAK=full) runs 1,000 steps and 50 generations.
"""

from __future__ import annotations

import os

import pytest

from tests.browser.pages import WatchedPage

pytestmark = pytest.mark.browser

FULL = os.environ.get("SOAK") == "full"
STEPS, GENERATIONS = (1000, 50) if FULL else (200, 12)


def _heap_mb(watched: WatchedPage) -> float:
    # The page's own JS heap (Chromium's performance.memory; missing it is a failure, not a pass).
    # The worker's memory is covered by the live-tensor counts of app.stats().
    used = watched.page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
    assert used is not None, "performance.memory is missing: this browser cannot measure its heap"
    return float(used) / 1e6


def test_soak_live_tensors_and_heap_stay_flat(wasm_page: WatchedPage, browser_report) -> None:
    wasm_page.ready()
    run = "n => app.generate({prompt: 'Hello soak', maxNewTokens: n, greedy: false, seed: 3})"
    every_step = "n => app.generate({prompt: 'Hello soak', maxNewTokens: n, minNewTokens: n, seed: 3})"
    first = wasm_page.page.evaluate(every_step, STEPS)
    assert len(first["tokens"]) == STEPS  # minNewTokens: no end-of-sequence before STEPS
    baseline = wasm_page.page.evaluate("app.stats()")
    heap_before = _heap_mb(wasm_page)
    for _ in range(GENERATIONS):
        wasm_page.page.evaluate(run, 16)
    after = wasm_page.page.evaluate("app.stats()")
    heap_after = _heap_mb(wasm_page)
    browser_report["soak_wasm"] = {
        "decode_steps": len(first["tokens"]),
        "generations": GENERATIONS,
        "live_tensors": [baseline["liveTensors"], after["liveTensors"]],
        "held_tensors": [baseline["heldTensors"], after["heldTensors"]],
        "page_heap_mb": [round(heap_before, 2), round(heap_after, 2)],
    }
    # Kept states (prefix reuse) hold tensors on purpose; anything live beyond them is a leak.
    assert after["liveTensors"] == after["heldTensors"], after
    assert baseline["liveTensors"] == baseline["heldTensors"], baseline
    assert heap_after - heap_before < 20
    wasm_page.assert_clean()
