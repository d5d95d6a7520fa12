"""The browser rows of `make fidelity`: the page's `app.logits` on prefixes of the first held-out window.

`app.logits(ids)` returns the last position's logits only, so position k of window 0 costs one call on
the prefix ids[: k + 1]; wasm affords a few hundred such calls on the tiny model, WebGPU (SwiftShader
here: fp32 only, slow) a few dozen. The site holds every bundle; `?model=NAME` picks one.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.fidelity_scores import (
    Predictions,
    Score,
    bundle_format,
    failed,
    perplexity,
    predictions_from_logits,
    score,
)
from devtools.chromium import CHROMIUM, CHROMIUM_FLAGS
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving

log = logging.getLogger("bench.fidelity")

TIMEOUT_MS = 600_000
CALLS_PER_EVALUATE = 16  # prefixes per round trip: bounded payload (16 × V floats) and progress logging
# (backend, bundle) pairs scored; WebGPU on SwiftShader runs fp32 only.
BROWSER_PATHS = [
    ("wasm", "fp32-fused"),
    ("wasm", "fp32-portable"),
    ("wasm", "fp16-fused"),
    ("wasm", "q4-fused"),
    ("wasm", "q4-b16-float"),
    ("wasm", "q8-fused"),
    ("wasm", "q8-float"),
    ("webgpu", "fp32-fused"),
    ("webgpu", "fp32-portable"),
]

# Runs in the page: last-position logits of each prefix ids[:k] for k in ends.
_PREFIX_LOGITS_JS = """
async ([ids, ends]) => {
  const rows = [];
  for (const end of ends) rows.push(Array.from(await window.app.logits(ids.slice(0, end))));
  return rows;
}
"""


@contextmanager
def _served_site(bundles: dict[str, Path]) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build_site(SiteSpec(site, list(bundles.items()), {name: f"fidelity: {name}" for name in bundles}))
        with serving(site) as url:
            yield url


def page_predictions(
    browser: Any, url: str, backend: str, model: str, stream: torch.Tensor, count: int
) -> tuple[Predictions, dict[str, Any]]:
    """Predictions for positions 0..count-1 of window 0, plus the page's reported backend."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{url}?backend={backend}&model={model}")
        ready = page.evaluate("window.app.ready")
        ids = stream[: count + 1].tolist()  # inputs ids[:count], targets ids[1:count + 1]
        rows: list[list[float]] = []
        for first in range(1, count + 1, CALLS_PER_EVALUATE):
            ends = list(range(first, min(first + CALLS_PER_EVALUATE, count + 1)))
            rows += page.evaluate(_PREFIX_LOGITS_JS, [ids, ends])
            log.info("%s %s: %d / %d prefixes", backend, model, len(rows), count)
        logits = np.asarray(rows, dtype=np.float64)  # [count, V]
        return predictions_from_logits(logits, np.asarray(ids[1:], dtype=np.int64)), ready
    finally:
        context.close()


def browser_scores(
    bundles: dict[str, Path],
    stream: torch.Tensor,
    reference: Predictions,
    native: dict[str, Predictions],
    positions: tuple[int, int],
) -> list[Score]:
    """Rows for BROWSER_PATHS; `positions` is (wasm, webgpu) prefixes of window 0; `native` by bundle."""
    from playwright.sync_api import sync_playwright

    scores = []
    with _served_site(bundles) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            for backend, model in BROWSER_PATHS:
                count = positions[0] if backend == "wasm" else positions[1]
                dtype = bundle_format(bundles[model])[0]
                entry = _one_path(browser, url, backend, (model, dtype), stream, reference, count)
                if model in native and not entry.error:
                    entry.native_perplexity = perplexity(native[model].nll[:count])
                scores.append(entry)
        finally:
            browser.close()
    return scores


def _one_path(
    browser: Any,
    url: str,
    backend: str,
    bundle: tuple[str, str],
    stream: torch.Tensor,
    reference: Predictions,
    count: int,
) -> Score:
    """`bundle` is (name, weight format)."""
    model, dtype = bundle
    path = f"{backend} {model}"
    started = time.monotonic()
    try:
        got, ready = page_predictions(browser, url, backend, model, stream, count)
        if ready.get("backend") != backend:
            raise RuntimeError(f"the page fell back to {ready.get('backend')}")
        entry = score(path, backend, model, dtype, got, reference)
    except Exception as err:  # a path the page cannot run is a row of the table, not a crash
        log.exception("%s failed", path)
        # Playwright's message starts "Page.evaluate: Error: " and may carry a JS stack after line 1.
        message = str(err).splitlines()[0].removeprefix("Page.evaluate: ").replace("|", "/")
        entry = failed(path, backend, model, dtype, message)
    entry.seconds = time.monotonic() - started
    log.info("%s: ppl %.6f, top-1 %.4f (%.0f s)", path, entry.perplexity, entry.top1_agreement, entry.seconds)
    return entry
