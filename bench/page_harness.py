"""What the page benches share: the bundles they time, the real demo page driven through `window.app`.

The page benches (`threads`, `ready`, `scale_page`, `conversation_page`, `conversation_page_person`) build
the demo site (`qwen35web site build`), open it in Chromium and time the runtime's own stats;
`conversation_person` times the same bundles natively. The bundle of each model is exported once under
build/bench/ and reused (shared with `make bench`).
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

from bench.artifacts import build_checkpoint, export_ours
from devtools.chromium import CHROMIUM

log = logging.getLogger("bench.page_harness")

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "bench"
RESULTS = REPO / "bench" / "results"
TINY_CHECKPOINT = REPO / "models" / "tiny-qwen35"
PROMPT_TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. "


def bundle_for(model: str) -> Path:
    """The exported bundle timed for `model` (built once, reused from build/bench/).

    tiny: the trained demo model (models/tiny-qwen35, fp32); otherwise random weights of the real shape, the
    q8 wasm format (build/bench/MODEL/fused-q8).
    """
    if model == "tiny":
        (WORK / "threads").mkdir(parents=True, exist_ok=True)
        path = export_ours(TINY_CHECKPOINT, WORK / "threads" / "tiny-fp32", "fused", "fp32")
    else:
        base = WORK / model
        base.mkdir(parents=True, exist_ok=True)
        checkpoint = build_checkpoint(base / "ckpt-text", model, "text")
        path = export_ours(checkpoint, base / "fused-q8", "fused", "q8")
    if path is None:
        raise RuntimeError(f"the {model} export failed (see its log under {WORK})")
    return path.parent


def prompt_of(page: Any, tokens: int, lead: str = "") -> str:
    """A prompt of exactly `tokens` tokens (the longest prefix of `lead` + a repeated text that fits)."""
    text = lead + PROMPT_TEXT * (tokens // 4 + 8)
    low, high = 1, len(text)
    while low < high:  # longest prefix with at most `tokens` tokens
        middle = (low + high + 1) // 2
        if len(page.evaluate("t => app.tokenize(t)", text[:middle])) <= tokens:
            low = middle
        else:
            high = middle - 1
    prompt = text[:low]
    count = len(page.evaluate("t => app.tokenize(t)", prompt))
    if count != tokens:
        log.warning("prompt of %d tokens (asked %d)", count, tokens)
    return prompt


def generate(page: Any, request: dict) -> dict:
    """One `app.generate(request)` in the page; its done stats (prefillMs, decodeTokensPerSecond, ...)."""
    return page.evaluate("r => app.generate(r)", request)  # type: ignore[no-any-return]


def chromium_version() -> str:
    """The Chromium the benches drive, as `chromium --version` prints it (for the reports)."""
    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()
