"""Every size where the page runs: the real page on wasm (timed) and on WebGPU (checked against native).

  python -m bench.scale_page wasm --bundle 2b=DIR [--bundle 0.8b=DIR ...] [--threads 1,2]
  python -m bench.scale_page webgpu --bundle 4b=DIR [--max-new-tokens 4]

wasm: the demo page (`qwen35web site build`, served cross-origin isolated),
`?model=NAME&backend=wasm&threads=N`, one page per thread count: load (the worker's own phases), a few
greedy tokens, then prefill-128 and decode ms/token (the runtime's `prefillMs` / `decodeTokensPerSecond`),
medians of interleaved runs after a warm-up.
webgpu: the same page with `--enable-unsafe-webgpu` (SwiftShader here: correct, not fast), `?backend=webgpu`:
load, then the first greedy tokens of a fixed prompt, compared with qwen35web.runtime on CPython +
onnxruntime on the same bundle. A load or run that fails is recorded with the page's message, not hidden.
Both record the peak RSS of the browser's largest process (the renderer, where the worker's wasm heap and
the downloaded weights live) and of all its processes together, sampled from /proc.
Results merge into bench/results/scale-page.{json,md} (one row per backend, model and thread count).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from bench.page_harness import generate, prompt_of
from bench.scale_native import native_references
from bench.scale_report import markdown, merge
from devtools.chromium import CHROMIUM, CHROMIUM_FLAGS, OFFLINE_FLAGS
from qwen35web.web.build import SiteSpec, build_site, parse_named
from qwen35web.web.serve import serving

log = logging.getLogger("bench.scale_page")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TIMEOUT_MS = 3_600_000  # SwiftShader runs a 4B decode step in minutes
PREFILL_TOKENS = 128
CHECK_PROMPT = "The quick brown fox jumps over the lazy dog."
WEBGPU_PROMPT = "The fox"  # short: SwiftShader runs every prompt token of a 4B at CPU-rasteriser speed


class RssWatch:
    """Peak resident memory of the processes whose command line holds `marker` (one browser's profile).

    Past `cap_bytes` in all it ends those processes (the page then fails with a closed target, and
    `capped` says why): a model too big for this shared machine is stopped, not left to the OOM killer.
    """

    def __init__(self, marker: str, cap_bytes: float, period_s: float = 0.5):
        self.marker = marker.encode()
        self.cap_bytes = cap_bytes
        self.period_s = period_s
        self.peak_process = self.peak_total = 0
        self.capped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)

    def _sample(self) -> None:
        sizes: dict[int, int] = {}
        for name in filter(str.isdigit, os.listdir("/proc")):
            pid = int(name)
            try:
                if self.marker not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                fields = Path(f"/proc/{pid}/statm").read_text().split()
            except OSError:  # the process ended between listing and reading
                continue
            sizes[pid] = int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
        if sizes:
            self.peak_process = max(self.peak_process, max(sizes.values()))
            self.peak_total = max(self.peak_total, sum(sizes.values()))
        if sum(sizes.values()) > self.cap_bytes and not self.capped:
            self.capped = True
            log.warning("browser RSS %.1f GB passed the cap: ending it", sum(sizes.values()) / 1e9)
            for pid in sizes:  # only this browser's own processes (matched by its profile path)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "peak_rss_largest_process_gb": round(self.peak_process / 1e9, 2),
            "peak_rss_browser_gb": round(self.peak_total / 1e9, 2),
        }
        if self.capped:
            found["rss_cap_gb"] = round(self.cap_bytes / 1e9, 1)
        return found


@contextmanager
def browser_context(webgpu: bool, cap_gb: float) -> Iterator[tuple[Any, RssWatch]]:
    """A fresh Chromium profile (a persistent context, so its processes can be told apart by its path)."""
    from playwright.sync_api import sync_playwright

    flags = CHROMIUM_FLAGS if webgpu else OFFLINE_FLAGS
    with tempfile.TemporaryDirectory(prefix="scale-page-profile-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=flags, headless=True
        )
        try:
            with RssWatch(profile, cap_gb * 1e9) as watch:
                yield context, watch
        finally:
            with contextlib.suppress(Exception):  # already gone when the watch ended it
                context.close()


def open_model(context: Any, url: str, query: str) -> tuple[Any, dict]:
    """A page of the model loaded with `query`; its load facts, or {"error": the page's message}."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    last_progress: list[dict] = [{}]  # the load's latest progress event: where a failed load stopped
    page.expose_function("__scaleProgress", lambda p: last_progress.__setitem__(0, p))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    started = time.monotonic()
    page.goto(f"{url}?{query}")
    try:
        page.evaluate("app.on('progress', (p) => window.__scaleProgress(p)); app.ready")
    except Exception as err:  # the page rejected: record its message, that is the measurement
        message = str(err).splitlines()[0]
        seconds = round(time.monotonic() - started, 1)
        failed = {"error": message, "console_errors": errors[-5:], "failed_after_s": seconds}
        return page, {**failed, "last_progress": last_progress[0]}
    info = page.evaluate("app.info()")
    return page, {
        "ready_ms": round((time.monotonic() - started) * 1000),
        "threads": info.get("threads"),
        "timings": info.get("timings"),
        "weights": info.get("weights"),
        "bundle": info.get("bundle"),
    }


def time_wasm(page: Any, prompt: str, decode_tokens: int) -> dict[str, float]:
    """One prefill of `prompt` (one token out) and one decode of `decode_tokens` tokens."""
    decode = {"prompt": "Hello", "maxNewTokens": decode_tokens, "minNewTokens": decode_tokens, "greedy": True}
    prefill = generate(page, {"prompt": prompt, "maxNewTokens": 1, "greedy": True})
    stats = generate(page, decode)
    return {
        "prefill_128_ms": prefill["prefillMs"],
        "prefilled_tokens": prefill["prefilledTokens"],  # 128 unless the prefix cache skipped some
        "decode_ms_per_token": 1000 / stats["decodeTokensPerSecond"],
        "load_average_1min": os.getloadavg()[0],
    }


def _open_wasm(
    context: Any, url: str, name: str, threads: int, repeats: int
) -> tuple[dict, tuple[Any, list[str]] | None]:
    """A wasm page of `name` with `threads`: its row, and (page, a 128-token prompt per round) once it
    is warm. Each round's prompt starts differently, so the prefix cache cannot skip its prefill."""
    page, loaded = open_model(context, url, f"model={name}&backend=wasm&threads={threads}")
    row = {"backend": "wasm", "model": name, "threads": threads, **loaded, "samples": {}}
    log.info("%s wasm %d threads: %s", name, threads, loaded)
    if "error" in loaded:
        return row, None
    row["first_tokens"] = generate(page, {"prompt": CHECK_PROMPT, "maxNewTokens": 4, "greedy": True})[
        "tokens"
    ]
    generate(page, {"prompt": "Hello", "maxNewTokens": 8, "minNewTokens": 8, "greedy": True})  # warm-up
    return row, (page, [prompt_of(page, PREFILL_TOKENS, f"Round {i}: ") for i in range(repeats)])


def measure_wasm(
    url: str, cases: list[tuple[str, int]], repeats: int, decode_tokens: int, cap_gb: float
) -> list[dict]:
    """Every (model, threads) case in its own page of one browser, timed interleaved round by round
    (A B C A B C ...) so drifting machine load hits them alike."""
    with browser_context(False, cap_gb) as (context, watch):
        opened = [_open_wasm(context, url, name, threads, repeats) for name, threads in cases]
        for round_ in range(repeats):
            for row, ready in opened:
                if ready is None:
                    continue
                page, prompts = ready
                for key, value in time_wasm(page, prompts[round_], decode_tokens).items():
                    row["samples"].setdefault(key, []).append(value)
                latest = {k: round(v[-1], 1) for k, v in row["samples"].items()}
                log.info("%s %d threads: %s", row["model"], row["threads"], latest)
        rows = [row for row, _ in opened]
        for row in rows:
            row["median"] = {k: statistics.median(v) for k, v in row["samples"].items()}
            row.update(watch.figures())  # one browser for every case: the peak of them all
    return rows


def check_webgpu(url: str, name: str, bundle: Path, max_new_tokens: int, cap_gb: float) -> dict:
    with browser_context(True, cap_gb) as (context, watch):
        page, loaded = open_model(context, url, f"model={name}&backend=webgpu")
        row: dict[str, Any] = {"backend": "webgpu", "model": name, "threads": None, **loaded}
        log.info("%s webgpu: %s", name, loaded)
        if "error" not in loaded:
            row["adapter"] = page.evaluate(ADAPTER_JS)
            started = time.monotonic()
            request = {"prompt": WEBGPU_PROMPT, "maxNewTokens": max_new_tokens, "greedy": True}
            stats = generate(page, request)
            row["generate_s"] = round(time.monotonic() - started, 1)
            row["page_tokens"] = stats["tokens"]
        row.update(watch.figures())
    if "page_tokens" in row:
        # After the browser is gone: the native session needs the memory the page held.
        row.update(native_references(bundle, WEBGPU_PROMPT, max_new_tokens))
        # The page's kernels compute in fp32: compare with native doing the same (see bench.scale_native).
        reference = row.get("native_fp32_compute_tokens", row["native_tokens"])
        row["tokens_equal"] = row["page_tokens"] == reference
    log.info("%s webgpu row: %s", name, json.dumps(row))
    return row


# The page's worker holds the device; a second adapter in the page reports the same limits.
ADAPTER_JS = """async () => {
  const adapter = await navigator.gpu.requestAdapter();
  const l = adapter.limits;
  return {fallback: adapter.info ? adapter.info.isFallbackAdapter : adapter.isFallbackAdapter,
          maxBufferSize: l.maxBufferSize, maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          features: [...adapter.features].sort()};
}"""


def bundle_facts(bundle: Path) -> dict:
    manifest = json.loads((bundle / "manifest.json").read_text())
    sizes = [entry["size"] for entry in manifest["files"].values()]
    return {
        "dtype": manifest.get("dtype"),
        "quantization": manifest.get("quantization"),
        "bundle_bytes": sum(sizes),
        "largest_file_bytes": max(sizes),
    }


def _no_path(arg: str) -> str:
    """An argument as recorded: no machine paths in the results (NAME=/abs/dir -> NAME=DIR)."""
    name, _, value = arg.rpartition("=")
    if os.path.isabs(value):
        return f"{name}=DIR" if name else "DIR"
    return arg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_page", description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=("wasm", "webgpu"))
    parser.add_argument("--bundle", action="append", required=True, help="NAME=DIR (repeatable)")
    parser.add_argument("--threads", default="1,2", help="wasm thread counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=4, help="webgpu: tokens compared with native")
    parser.add_argument(
        "--rss-cap-gb", type=float, default=16.0, help="end the browser past this much RSS (shared machine)"
    )
    parser.add_argument("--site", type=Path, default=REPO / "build" / "scale-site")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bundles = [(name, Path(path)) for name, path in parse_named(args.bundle, "bundle")]
    missing = [str(path) for _, path in bundles if not (path / "manifest.json").is_file()]
    if missing:
        print(f"error: not a bundle (no manifest.json): {missing[0]}", file=sys.stderr)
        return 2
    build_site(SiteSpec(args.site, bundles, {name: "bench.scale_page" for name, _ in bundles}))
    paths = dict(bundles)
    with serving(args.site) as url:
        if args.backend == "wasm":
            threads = [int(t) for t in args.threads.split(",")]
            cases = [(name, t) for name, _ in bundles for t in threads]
            rows = measure_wasm(url, cases, args.repeats, args.decode_tokens, args.rss_cap_gb)
        else:
            rows = [
                check_webgpu(url, name, path, args.max_new_tokens, args.rss_cap_gb) for name, path in bundles
            ]
    for row in rows:
        row.update(bundle_facts(paths[row["model"]]), date=date.today().isoformat())
    command = " ".join(["python -m bench.scale_page", *map(_no_path, sys.argv[1:] if argv is None else argv)])
    results = merge(RESULTS / "scale-page.json", rows, command)
    (RESULTS / "scale-page.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "scale-page.md").write_text(markdown(results))
    log.info("wrote %s", RESULTS / "scale-page.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
