"""The loaded model on a thread of its own, one job at a time.

The native engine runs each graph call synchronously inside its coroutines, so a generation never
yields to its event loop. Run on the HTTP server's loop it would block accepting connections and
noticing closed ones. Here the runtime lives on one worker thread with its own event loop; jobs
queue in submission order (a single-thread executor is the queue) and the HTTP loop awaits them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ModelWorker:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen35web-model")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0  # jobs submitted and not finished (the one running included)
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    def _run(self, job: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            return self._loop.run_until_complete(job())
        finally:
            with self._lock:
                self._pending -= 1

    async def run(self, job: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run `job()` on the model's thread after the jobs before it; its result or its exception."""
        with self._lock:
            self._pending += 1
        return await asyncio.wrap_future(self._executor.submit(self._run, job))

    def call(self, job: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """The same from a thread without a running loop (start-up and shutdown)."""
        with self._lock:
            self._pending += 1
        return self._executor.submit(self._run, job).result()

    def shutdown(self) -> None:
        """Close the worker's loop once the queued jobs are done."""

        def close() -> None:
            if self._loop is not None:
                self._loop.close()

        self._executor.submit(close).result()
        self._executor.shutdown(wait=True)
