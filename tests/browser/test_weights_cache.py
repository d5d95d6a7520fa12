"""Weights: downloaded once with progress, cached by sha256, verified before every use; a download that
breaks off resumes (HTTP Range), a download that cannot fit is refused up front, two tabs can load at once."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.pages import WatchedPage, watch

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
    assert {
        k: warm_info["weights"][k] for k in ("cachedFiles", "cachedBytes", "downloadedBytes", "resumedBytes")
    } == {
        "cachedFiles": BUNDLE_FILES,
        "cachedBytes": cold_info["weights"]["downloadedBytes"],
        "downloadedBytes": 0,
        "resumedBytes": 0,
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
        const cache = await caches.open('qwen35web-weights-v2');
        for (const key of await cache.keys()) await cache.put(key, new Response(new Uint8Array([1, 2, 3])));
    }""")
    again, info, _, progress = _load(context, base_url)
    assert info["weights"]["cachedFiles"] == 0 and info["weights"]["downloadedBytes"] > 0
    assert progress == [] or progress[-1]["phase"] == "session"
    result = again.page.evaluate("app.generate({prompt: 'Hello', maxNewTokens: 3, greedy: true})")
    assert len(result["tokens"]) == 3
    again.assert_clean()


PLAN = ("model.onnx", WEIGHTS, "sampler.onnx", "tokenizer.json")  # the files the page fetches


def _sizes(watched: WatchedPage, base_url: str) -> dict[str, int]:
    """The sizes of the bundle files the page fetches, from the served manifest."""
    manifest = watched.page.evaluate(
        "url => fetch(url).then(r => r.json())", base_url + "models/tiny-random/manifest.json"
    )
    return {name: int(manifest["files"][name]["size"]) for name in PLAN}


def test_a_download_cut_off_resumes_with_range_and_is_verified(new_context, base_url: str) -> None:
    """Within one load: the first answer stops halfway; the page asks for the rest and checks the whole."""
    context = new_context()
    watched = watch(context, base_url)
    asked: list[str | None] = []

    def cut_first(route, request) -> None:
        asked.append(request.headers.get("range"))
        if len(asked) == 1:
            body = route.fetch().body()
            route.fulfill(
                status=200, body=body[: len(body) // 2], headers={"Content-Type": "application/octet-stream"}
            )
        else:
            route.continue_()

    watched.page.route(f"**/{WEIGHTS}", cut_first)
    watched.page.goto(base_url + "?backend=wasm")
    watched.ready()
    sizes = _sizes(watched, base_url)
    assert asked == [None, f"bytes={sizes[WEIGHTS] // 2}-"]
    weights = watched.page.evaluate("app.info()")["weights"]
    assert weights["downloadedBytes"] == sum(sizes.values()) and weights["resumedBytes"] == 0
    result = watched.page.evaluate("app.generate({prompt: 'Hello', maxNewTokens: 3, greedy: true})")
    assert len(result["tokens"]) == 3
    watched.assert_clean()


def test_a_broken_download_resumes_in_the_next_load_from_the_stored_pieces(
    new_context, base_url: str
) -> None:
    """The network goes away mid-download: one clear message; the next load fetches only the rest."""
    context = new_context()
    first = watch(context, base_url)

    def broken(route, request) -> None:
        if request.headers.get("range"):
            route.abort("internetdisconnected")
        else:
            body = route.fetch().body()
            headers = {"Content-Type": "application/octet-stream"}
            route.fulfill(status=200, body=body[: len(body) // 2], headers=headers)

    first.page.route(f"**/{WEIGHTS}", broken)
    first.page.goto(base_url + "?backend=wasm")
    message = first.page.evaluate("app.ready.then(() => 'resolved', e => e.name + ': ' + e.message)")
    pattern = (
        rf"NetworkError: {re.escape(WEIGHTS)}: the download broke off at [\d.]+ MB of [\d.]+ MB \(.+\); "
        r"[\d.]+ MB are kept: load again to resume"
    )
    assert re.fullmatch(pattern, message), message
    first.page.wait_for_selector("#error:not([hidden])")
    first.page.close()

    again = watch(context, base_url)
    asked: list[str | None] = []

    def record(route, request) -> None:
        asked.append(request.headers.get("range"))
        route.continue_()

    again.page.route(f"**/{WEIGHTS}", record)
    again.page.goto(base_url + "?backend=wasm")
    again.ready()
    sizes = _sizes(again, base_url)
    weights = again.page.evaluate("app.info()")["weights"]
    resumed = weights["resumedBytes"]
    # Whole pieces of the first half were kept (a file is stored in about 16 pieces).
    assert sizes[WEIGHTS] // 4 < resumed <= sizes[WEIGHTS] // 2
    assert asked == [f"bytes={resumed}-"]
    # model.onnx came before the weights and was stored whole; the rest came now.
    assert weights["cachedBytes"] == sizes["model.onnx"]
    assert weights["downloadedBytes"] == sum(sizes.values()) - sizes["model.onnx"] - resumed
    result = again.page.evaluate("app.generate({prompt: 'Hello', maxNewTokens: 3, greedy: true})")
    assert len(result["tokens"]) == 3
    again.assert_clean()


def _megabytes(size: int) -> str:
    """As weights.js writes sizes."""
    return f"{size / 1e6:.{2 if size < 1e7 else 1}f} MB"


QUOTA_STUB = """
navigator.storage.estimate = async () => ({ quota: 1000000, usage: 500000 });
"""


def test_a_model_that_cannot_fit_is_refused_before_downloading(new_context, base_url: str) -> None:
    context = new_context()
    context.add_init_script(QUOTA_STUB)
    watched = watch(context, base_url)
    watched.page.goto(base_url + "?backend=wasm")
    message = watched.page.evaluate("app.ready.then(() => 'resolved', e => e.name + ': ' + e.message)")
    needed = sum(_sizes(watched, base_url).values())
    assert message == (
        "StorageError: not enough browser storage for this model: "
        f"it needs {_megabytes(needed)} and 0.50 MB are free "
        "(free space for this site in the browser's settings, then load again)"
    )
    assert not any(url.endswith(WEIGHTS) for url in watched.requests)  # refused before any byte
    watched.page.wait_for_selector("#error:not([hidden])")
    assert "not enough browser storage" in watched.page.locator("#error").inner_text()


def test_two_tabs_loading_the_same_model_at_once_both_work(new_context, base_url: str) -> None:
    context = new_context()
    tabs = [watch(context, base_url) for _ in range(2)]
    for tab in tabs:
        tab.page.goto(base_url + "?backend=wasm")
    results = []
    for tab in tabs:
        tab.ready()
        results.append(
            tab.page.evaluate("app.generate({prompt: 'Hello', maxNewTokens: 4, greedy: true})")["tokens"]
        )
    assert results[0] == results[1] and len(results[0]) == 4
    stored = tabs[0].page.evaluate(
        "caches.open('qwen35web-weights-v2').then(c => c.keys())"
        ".then(keys => keys.map(r => new URL(r.url).pathname))"
    )
    markers = [path for path in stored if re.fullmatch(r"/\.weights/sha256/[0-9a-f]{64}", path)]
    assert len(markers) == BUNDLE_FILES, json.dumps(stored)
    for tab in tabs:
        tab.assert_clean()
