"""Pages under watch for the browser tests: Chromium's flags, and what a clean page must not do.

Each page is watched: console errors, uncaught exceptions and any request that would leave the
page's origin (routed and aborted) are recorded, and `assert_clean()` checks there were none.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_NAME = "tiny-random"
READY_TIMEOUT_MS = 120_000
BUILD_DIR = Path(__file__).resolve().parents[2] / "build"
SCREENSHOT_DIR = BUILD_DIR / "screenshots"
REPORT_FILE = BUILD_DIR / "browser-report.json"


@dataclass
class WatchedPage:
    """A page plus what it did that a clean page must not: console errors, off-origin requests."""

    page: Any  # playwright.sync_api.Page
    origin: str
    backend: str = ""  # the ?backend= it was opened with
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.foreign_requests == [], f"requests left the origin: {self.foreign_requests}"
        assert self.errors == [], f"console errors: {self.errors}"

    def ready(self) -> dict:
        return self.page.evaluate("window.app.ready")


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def watch(context, base_url: str) -> WatchedPage:
    """A new page in `context` whose requests stay on base_url's origin (others are aborted)."""
    page = context.new_page()
    watched = WatchedPage(page, _origin(base_url))

    def route(route, request) -> None:
        watched.requests.append(request.url)
        if _origin(request.url) != watched.origin:
            watched.foreign_requests.append(request.url)
            route.abort()
        else:
            route.continue_()

    def console(message) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    page.route("**/*", route)
    page.on("console", console)
    page.on("pageerror", lambda e: watched.errors.append(f"uncaught: {e}"))
    return watched


def open_page(browser, base_url: str, backend: str, query: str = "") -> WatchedPage:
    """A watched page in a context of its own, navigated to ?backend=BACKEND plus `query`."""
    context = browser.new_context()
    context.set_default_timeout(READY_TIMEOUT_MS)
    watched = watch(context, base_url)
    watched.backend = backend
    watched.page.goto(f"{base_url}?backend={backend}{query}")
    return watched
