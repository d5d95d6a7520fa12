"""Cross-origin isolation (what onnxruntime-web's wasm threads need): sent by `qwen35web site serve` by
default; where the server sends no COOP/COEP, the service worker supplies them; with neither, one thread
and the page says why."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from qwen35web.web.serve import serving
from tests.browser.pages import READY_TIMEOUT_MS, WatchedPage, watch

pytestmark = pytest.mark.browser

MAX_AUTO_THREADS = 4  # worker.js: one thread per core, at most this many
NOT_ISOLATED = "1 thread: the page is not cross-origin isolated (no COOP/COEP headers)"


def _expected_threads(watched: WatchedPage) -> int:
    return min(watched.page.evaluate("navigator.hardwareConcurrency"), MAX_AUTO_THREADS)


def _isolated_after_reload(watched: WatchedPage, timeout_s: float = 60) -> bool:
    """crossOriginIsolated once the page has settled (the service worker may reload it once) and its
    script has run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if watched.page.evaluate("crossOriginIsolated && typeof window.app === 'object'"):
                return True
        except Exception:  # the context went away with the reload: ask the new one
            pass
        time.sleep(0.25)
    return False


def _assert_threads_shown(watched: WatchedPage, threads: int) -> None:
    info = watched.page.evaluate("app.info()")
    assert info["threads"] == threads
    watched.page.wait_for_selector("#threads:not(:empty)")
    assert watched.page.locator("#threads").inner_text() == info["threadsReason"]


def test_isolated_by_default_with_a_thread_per_core(wasm_page: WatchedPage, base_url: str) -> None:
    with urllib.request.urlopen(base_url) as response:
        assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    wasm_page.ready()
    assert wasm_page.page.evaluate("crossOriginIsolated") is True
    threads = _expected_threads(wasm_page)
    if wasm_page.page.evaluate("navigator.hardwareConcurrency") > 1:
        assert threads > 1
    _assert_threads_shown(wasm_page, threads)
    assert wasm_page.page.evaluate("app.info().crossOriginIsolated") is True
    result = wasm_page.page.evaluate("app.generate({prompt: 'Hello', maxNewTokens: 4, greedy: true})")
    assert len(result["tokens"]) == 4
    wasm_page.assert_clean()


def test_without_headers_the_service_worker_isolates_the_page(new_context, site_dir: Path) -> None:
    with serving(site_dir, isolated=False) as url:
        with urllib.request.urlopen(url) as response:
            assert "Cross-Origin-Embedder-Policy" not in response.headers
        watched = watch(new_context(), url)
        watched.page.goto(url + "?backend=wasm")
        assert _isolated_after_reload(watched)
        watched.ready()
        assert watched.page.evaluate("app.info().shellControlled") is True
        _assert_threads_shown(watched, _expected_threads(watched))
        result = watched.page.evaluate("app.generate({prompt: 'Hello', maxNewTokens: 4, greedy: true})")
        assert len(result["tokens"]) == 4
        watched.assert_clean()


def test_without_headers_or_service_worker_one_thread_and_the_page_says_why(browser, site_dir: Path) -> None:
    context = browser.new_context(service_workers="block")
    context.set_default_timeout(READY_TIMEOUT_MS)
    try:
        with serving(site_dir, isolated=False) as url:
            watched = watch(context, url)
            watched.page.goto(url + "?backend=wasm")
            watched.ready()
            assert watched.page.evaluate("crossOriginIsolated") is False
            _assert_threads_shown(watched, 1)
            assert watched.page.evaluate("app.info().threadsReason") == NOT_ISOLATED
            result = watched.page.evaluate("app.generate({prompt: 'Hello', maxNewTokens: 4, greedy: true})")
            assert len(result["tokens"]) == 4
            watched.assert_clean()
    finally:
        context.close()
