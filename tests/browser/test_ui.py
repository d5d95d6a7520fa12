"""The demo page as a person uses it: type, Generate, watch the text stream, Stop, run again."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.pages import MODEL_NAME, SCREENSHOT_DIR, WatchedPage, watch

pytestmark = pytest.mark.browser

LONG_RUN_TOKENS = 3000  # far more than the time the test gives it: Stop must end it


def _output_text(watched: WatchedPage) -> str:
    return watched.page.locator(".turn.assistant .text").last.inner_text()


def _wait_for_output(watched: WatchedPage, longer_than: int, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = _output_text(watched)
        if len(text) > longer_than:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no streamed text after {timeout_s} s")


ADAPTER_KIND = """async () => {
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  if (!adapter) return "none";
  return adapter.isFallbackAdapter || adapter.info?.isFallbackAdapter ? "software" : "hardware";
}"""


def test_type_generate_stream_stop_and_run_again(new_context, base_url: str) -> None:
    watched = watch(new_context(), base_url)
    page = watched.page
    # No ?backend=: the page picks. A seed and no end of text before LONG_RUN_TOKENS: the sampled run can only
    # end by Stop or by the token limit, whatever the random model draws.
    page.goto(f"{base_url}?seed=7&minNewTokens={LONG_RUN_TOKENS}")
    assert watched.ready()["model"] == MODEL_NAME
    assert page.locator("#backend-badge").inner_text() in ("WebGPU", "WASM (CPU)")
    # The page's choice follows the adapter the browser offers; here that is SwiftShader (a fallback adapter:
    # wasm, and it says why), on a machine with a GPU a hardware adapter (WebGPU). Ask the browser which.
    reason = page.evaluate("app.info().backendReason")
    expected_backend, expected_reason = {
        "none": ("wasm", "no WebGPU adapter"),
        "software": ("wasm", "software WebGPU adapter"),
        "hardware": ("webgpu", "hardware WebGPU adapter"),
    }[page.evaluate(ADAPTER_KIND)]
    assert watched.ready()["backend"] == expected_backend and expected_reason in reason
    assert page.locator("#backend-reason").inner_text() == reason
    assert "random" in page.locator("#model-note").inner_text()

    page.evaluate("app.chatReady")
    page.fill("#prompt", "Hello world")
    page.click(".settings-panel summary")  # the settings sit folded under the message box
    page.fill("#temperature", "1")  # greedy, the random model repeats a byte that never decodes
    page.fill("#max-new-tokens", str(LONG_RUN_TOKENS))
    page.click("#generate")
    first = _wait_for_output(watched, 0)
    streamed = _wait_for_output(watched, len(first))  # it grows while the run goes on
    assert streamed.startswith(first)
    started = time.monotonic()
    assert page.evaluate("1 + 1") == 2 and time.monotonic() - started < 1.0  # the UI thread stays free
    page.click("#stop")
    page.wait_for_selector("#generate:not([disabled])")
    stats = page.locator("#run-stats").inner_text()
    assert "stopped" in stats
    assert int(stats.split(" tokens")[0]) < LONG_RUN_TOKENS

    page.fill("#max-new-tokens", "12")
    page.fill("#prompt", "Hello again")  # a chat empties the box once a message is sent
    page.click("#generate")
    page.wait_for_selector("#generate:not([disabled])")
    expect(page.locator("#run-stats")).to_contain_text("token limit")
    assert len(_output_text(watched)) > 0
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "demo.png"), full_page=True)
    watched.assert_clean()
