"""Run a coroutine to completion from a test, whatever event loop the test's thread already has.

The browser tests' Playwright (sync API) keeps an event loop running in the main thread for the rest of
the session, so `asyncio.run` there fails once any browser test has run: run it on a thread of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
