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
import asyncio
import json
import logging
import os
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

from bench.scale_report import markdown, merge
from bench.threads import generate, prompt_of
from devtools.chromium import CHROMIUM, CHROMIUM_FLAGS, OFFLINE_FLAGS
from qwen35web.web.build import SiteSpec, build_site, parse_named
from qwen35web.web.serve import serving

log = logging.getLogger("bench.scale_page")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TIMEOUT_MS = 3_600_000  # SwiftShader runs a 4B decode step in minutes
PREFILL_TOKENS = 128
CHECK_PROMPT = "The quick brown fox jumps over the lazy dog."


class RssWatch:
    """Peak resident memory of the processes whose command line holds `marker` (one browser's profile)."""

    def __init__(self, marker: str, period_s: float = 0.5):
        self.marker = marker.encode()
        self.period_s = period_s
        self.peak_process = self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)

    def _sample(self) -> None:
        sizes = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if self.marker not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                fields = Path(f"/proc/{pid}/statm").read_text().split()
            except OSError:  # the process ended between listing and reading
                continue
            sizes.append(int(fields[1]) * os.sysconf("SC_PAGE_SIZE"))
        if sizes:
            self.peak_process = max(self.peak_process, max(sizes))
            self.peak_total = max(self.peak_total, sum(sizes))

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, float]:
        return {
            "peak_rss_largest_process_gb": round(self.peak_process / 1e9, 2),
            "peak_rss_browser_gb": round(self.peak_total / 1e9, 2),
        }


@contextmanager
def browser_context(webgpu: bool) -> Iterator[tuple[Any, RssWatch]]:
    """A fresh Chromium profile (a persistent context, so its processes can be told apart by its path)."""
    from playwright.sync_api import sync_playwright

    flags = CHROMIUM_FLAGS if webgpu else OFFLINE_FLAGS
    with tempfile.TemporaryDirectory(prefix="scale-page-profile-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=flags, headless=True
        )
        try:
            with RssWatch(profile) as watch:
                yield context, watch
        finally:
            context.close()


def open_model(context: Any, url: str, query: str) -> tuple[Any, dict]:
    """A page of the model loaded with `query`; its load facts, or {"error": the page's message}."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    started = time.monotonic()
    page.goto(f"{url}?{query}")
    try:
        page.evaluate("app.ready")
    except Exception as err:  # the page rejected: record its message, that is the measurement
        message = str(err).splitlines()[0]
        return page, {"error": message, "console_errors": errors[-5:]}
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
        "decode_ms_per_token": 1000 / stats["decodeTokensPerSecond"],
        "load_average_1min": os.getloadavg()[0],
    }


def measure_wasm(
    url: str, name: str, thread_counts: list[int], repeats: int, decode_tokens: int
) -> list[dict]:
    rows: list[dict] = []
    with browser_context(webgpu=False) as (context, watch):
        pages: dict[int, tuple[Any, str]] = {}
        for threads in thread_counts:
            page, loaded = open_model(context, url, f"model={name}&backend=wasm&threads={threads}")
            rows.append({"backend": "wasm", "model": name, "threads": threads, **loaded, "samples": {}})
            log.info("%s wasm %d threads: %s", name, threads, loaded)
            if "error" in loaded:
                continue
            first = generate(page, {"prompt": CHECK_PROMPT, "maxNewTokens": 4, "greedy": True})
            rows[-1]["first_tokens"] = first["tokens"]
            generate(
                page, {"prompt": "Hello", "maxNewTokens": 8, "minNewTokens": 8, "greedy": True}
            )  # warm-up
            pages[threads] = (page, prompt_of(page, PREFILL_TOKENS))
        for _ in range(repeats):  # the pages interleaved round by round, so drifting load hits them alike
            for row in rows:
                if row["threads"] in pages:
                    for key, value in time_wasm(*pages[row["threads"]], decode_tokens).items():
                        row["samples"].setdefault(key, []).append(value)
                    log.info(
                        "%s %d threads: %s",
                        name,
                        row["threads"],
                        {k: round(v[-1], 1) for k, v in row["samples"].items()},
                    )
        for row in rows:
            row["median"] = {k: statistics.median(v) for k, v in row["samples"].items()}
            row.update(watch.figures())  # one browser for every thread count: the peak of them all
    return rows


def native_tokens(bundle: Path, prompt: str, max_new_tokens: int) -> list[int]:
    """The greedy tokens of qwen35web.runtime on CPython + onnxruntime for the same bundle."""
    from qwen35web.runtime.runtime import open_native
    from qwen35web.runtime.sampling import SamplingParams

    async def run() -> list[int]:
        runtime = await open_native(bundle, verify_hashes=False)
        try:
            params = SamplingParams(greedy=True, max_new_tokens=max_new_tokens)
            result = await runtime.generate(runtime.prompt_ids(prompt), params)
            return list(result.tokens)
        finally:
            await runtime.close()

    return asyncio.run(run())


def check_webgpu(url: str, name: str, bundle: Path, max_new_tokens: int) -> dict:
    with browser_context(webgpu=True) as (context, watch):
        page, loaded = open_model(context, url, f"model={name}&backend=webgpu")
        row: dict[str, Any] = {"backend": "webgpu", "model": name, "threads": None, **loaded}
        log.info("%s webgpu: %s", name, loaded)
        if "error" not in loaded:
            row["adapter"] = page.evaluate(ADAPTER_JS)
            started = time.monotonic()
            request = {"prompt": CHECK_PROMPT, "maxNewTokens": max_new_tokens, "greedy": True}
            stats = generate(page, request)
            row["generate_s"] = round(time.monotonic() - started, 1)
            row["page_tokens"] = stats["tokens"]
        row.update(watch.figures())
    if "page_tokens" in row:
        # After the browser is gone: the native session needs the memory the page held.
        row["native_tokens"] = native_tokens(bundle, CHECK_PROMPT, max_new_tokens)
        row["tokens_equal"] = row["page_tokens"] == row["native_tokens"]
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
    parser.add_argument("--site", type=Path, default=REPO / "build" / "scale-site")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bundles = [(name, Path(path)) for name, path in parse_named(args.bundle, "bundle")]
    missing = [str(path) for _, path in bundles if not (path / "manifest.json").is_file()]
    if missing:
        print(f"error: not a bundle (no manifest.json): {missing[0]}", file=sys.stderr)
        return 2
    build_site(SiteSpec(args.site, bundles, {name: "bench.scale_page" for name, _ in bundles}))
    rows: list[dict] = []
    with serving(args.site) as url:
        for name, path in bundles:
            if args.backend == "wasm":
                threads = [int(t) for t in args.threads.split(",")]
                found = measure_wasm(url, name, threads, args.repeats, args.decode_tokens)
            else:
                found = [check_webgpu(url, name, path, args.max_new_tokens)]
            for row in found:
                row.update(bundle_facts(path), date=date.today().isoformat())
            rows += found
    command = " ".join(["python -m bench.scale_page", *map(_no_path, sys.argv[1:] if argv is None else argv)])
    results = merge(RESULTS / "scale-page.json", rows, command)
    (RESULTS / "scale-page.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "scale-page.md").write_text(markdown(results))
    log.info("wrote %s", RESULTS / "scale-page.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
