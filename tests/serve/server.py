"""`qwen35web serve` in a subprocess on a free port, its log read as it comes.

The port is the one the server prints once it listens (`--port 0`); tests wait on what the server
shows (that line, a log line, an answered request), never on time alone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on (http://[\d.]+:\d+/v1)")
START_SECONDS = 120  # loading a bundle on a loaded 2-core machine


class ServerProcess:
    def __init__(self, bundle: Path, *args: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "qwen35web", "serve", str(bundle), "--port", "0", *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        self.log: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read_log, daemon=True).start()
        assert self.proc.stdout is not None
        first = self._first_line()
        match = LISTENING.search(first)
        assert match, f"the server did not start: {first!r} {self.log}"
        self.base_url = match.group(1)

    def _first_line(self) -> str:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_SECONDS)
        return line[0] if line else ""

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.log.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_log(self, text: str, after: int = 0, timeout: float = 60) -> str:
        """The first log line from index `after` on that contains `text` (fails after `timeout`)."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self.log[after:]) or self.proc.poll() is not None,
                timeout,
            )
            hits = [line for line in self.log[after:] if text in line]
        assert found and hits, f"no log line with {text!r}: {self.log[after:]}"
        return hits[0]

    def client(self, **options) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="unused", max_retries=0, **options)

    def stop(self) -> int:
        """Ctrl+C, as a person stops it; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
