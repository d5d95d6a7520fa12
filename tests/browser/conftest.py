"""Browser-test fixtures: the site built from the tiny bundle, a local server, headless Chromium.

Chromium is Debian's (/usr/bin/chromium; Playwright cannot download browsers here) with the flags
shared/notes/platform.md lists; WebGPU runs on SwiftShader (fp32 only, slow: few tokens there).
A missing Chromium or node_modules makes these tests fail with the command that fixes it: they
never skip, so CI cannot pass without them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qwen35web.web.build import SiteSpec, build_site, locate_vendored
from qwen35web.web.serve import serving
from tests.browser.pages import (
    MODEL_NAME,
    READY_TIMEOUT_MS,
    REPORT_FILE,
    WatchedPage,
    open_page,
)
from tests.browser.vision_images import write_vision_images


@pytest.fixture(scope="session")
def browser_report() -> Iterator[dict[str, Any]]:
    """Measurements the tests make (load times, decode speed), written to build/browser-report.json."""
    report: dict[str, Any] = {}
    yield report
    if report:
        REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
        REPORT_FILE.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory: pytest.TempPathFactory, export_bundle) -> Path:
    try:
        locate_vendored(None)
    except Exception as err:  # BuildError: the message says to run `npm ci`
        pytest.fail(f"browser tests need the npm packages: {err} (or `make setup`)")
    site = tmp_path_factory.mktemp("web") / "site"
    build_site(
        SiteSpec(
            site,
            [(MODEL_NAME, export_bundle("text", "fused"))],
            {MODEL_NAME: "Seeded tiny random checkpoint (test)."},
        )
    )
    return site


@pytest.fixture(scope="session")
def base_url(site_dir: Path) -> Iterator[str]:
    with serving(site_dir) as url:
        yield url


@pytest.fixture()
def new_context(browser) -> Iterator:
    """Fresh browser contexts (own cache storage), closed after the test."""
    contexts = []

    def make():
        context = browser.new_context()
        context.set_default_timeout(READY_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def wasm_page(browser, base_url: str) -> Iterator[WatchedPage]:
    """One page on the wasm backend for the module."""
    watched = open_page(browser, base_url, "wasm")
    yield watched
    watched.page.context.close()


VISION_MODEL = "tiny-vl"


@pytest.fixture(scope="session")
def vl_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, Path]]]:
    """A site with the tiny random VL bundle (real vision tower): (URL, checkpoint, its test-images/)."""
    from devtools.random_checkpoint import TINY_VISION_CONFIG, write_vl_checkpoint
    from qwen35web.export.pipeline import ExportOptions, run_export

    root = tmp_path_factory.mktemp("vision-page")
    checkpoint = write_vl_checkpoint(root / "checkpoint", seed=3, vision_config=TINY_VISION_CONFIG)
    run_export(ExportOptions(model_dir=checkpoint, out_dir=root / "bundle"))
    site = root / "site"
    note = "Tiny random vision-language checkpoint (test): its answers are noise."
    build_site(SiteSpec(site, [(VISION_MODEL, root / "bundle")], {VISION_MODEL: note}))
    images = write_vision_images(site / "test-images")
    with serving(site) as url:
        yield url, checkpoint, images
