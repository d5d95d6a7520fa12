"""Weights: downloaded once with progress, cached by sha256, verified before every use."""

from __future__ import annotations

import pytest

from tests.browser.pages import watch

pytestmark = pytest.mark.browser

WEIGHTS = "model.onnx.data"
BUNDLE_FILES = 4  # model.onnx, model.onnx.data, sampler.onnx, tokenizer.json


def _load(context, base_url: str, query: str = "?backend=wasm"):
    watched = watch(context, base_url)
    progress: list[dict] = []
    watched.page.expose_function("recordProgress", lambda p: progress.append(p))
    watched.page.goto(base_url + query)
    watched.page.evaluate("app.on('progress', p => window.recordProgress(p))")
    ready_ms = watched.page.evaluate("app.ready.then(() => performance.now())")
    return watched, watched.page.evaluate("app.info()"), ready_ms, progress


def test_second_visit_takes_verified_weights_from_the_cache(
    new_context, base_url: str, browser_report
) -> None:
    context = new_context()
    cold, cold_info, cold_ms, _ = _load(context, base_url)
    assert cold_info["weights"]["downloadedBytes"] > 0 and cold_info["weights"]["cachedFiles"] == 0
    assert any(url.endswith(WEIGHTS) for url in cold.requests)
    cold.assert_clean()
    cold.page.close()  # one model in memory at a time, as for a person reloading the page

    warm, warm_info, warm_ms, _ = _load(context, base_url)
    assert warm_info["weights"] == {
        "cachedFiles": BUNDLE_FILES,
        "cachedBytes": cold_info["weights"]["downloadedBytes"],
        "downloadedBytes": 0,
    }
    assert not any(url.endswith(WEIGHTS) for url in warm.requests)
    assert warm.page.locator("#load-text").inner_text().endswith("(weights from cache)")
    warm.assert_clean()
    browser_report["navigation_to_ready_ms"] = {"cold": round(cold_ms), "cached": round(warm_ms)}
    browser_report["worker_phases_ms"] = {"cold": cold_info["timings"], "cached": warm_info["timings"]}


def test_corrupt_download_is_refused_with_a_readable_error(new_context, base_url: str) -> None:
    context = new_context()
    watched = watch(context, base_url)

    def corrupt(route, request) -> None:
        body = bytearray(route.fetch().body())
        body[len(body) // 2] ^= 0xFF
        route.fulfill(status=200, body=bytes(body), headers={"Content-Type": "application/octet-stream"})

    watched.page.route(f"**/{WEIGHTS}", corrupt)
    watched.page.goto(base_url + "?backend=wasm")
    message = watched.page.evaluate("app.ready.then(() => 'resolved', e => e.message)")
    assert message == f"{WEIGHTS}: sha256 does not match the manifest (corrupt download)"
    watched.page.wait_for_selector("#error:not([hidden])")
    assert WEIGHTS in watched.page.locator("#error").inner_text()
    assert watched.foreign_requests == []


def test_corrupt_cache_entry_is_downloaded_again(new_context, base_url: str) -> None:
    context = new_context()
    first, _, _, _ = _load(context, base_url)
    first.page.evaluate("""async () => {
        const cache = await caches.open('qwen35web-weights-v1');
        for (const key of await cache.keys()) await cache.put(key, new Response(new Uint8Array([1, 2, 3])));
    }""")
    again, info, _, progress = _load(context, base_url)
    assert info["weights"]["cachedFiles"] == 0 and info["weights"]["downloadedBytes"] > 0
    assert progress == [] or progress[-1]["phase"] == "session"
    result = again.page.evaluate("app.generate({prompt: 'Hello', maxNewTokens: 3, greedy: true})")
    assert len(result["tokens"]) == 3
    again.assert_clean()
