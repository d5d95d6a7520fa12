"""wasm threads in the real page: prefill-128, prefill-512 and decode with 1 vs 2 (or more) threads.

  python -m bench.threads [--models tiny,0.8b] [--threads 1,2] [--repeats 3]

The demo page itself (`qwen35web site build`, served cross-origin isolated), `?backend=wasm&threads=N`, one
page per thread count, measured interleaved (1, 2, 1, 2, ...) so drifting machine load hits both alike.
Timings are the runtime's own (`prefillMs`, `decodeTokensPerSecond` of the done stats), medians over the
repeats, after warm-up generations (V8 tiers up Pyodide and the wasm over the first hundreds of tokens).
tiny: the trained demo model (models/tiny-qwen35, fp32); 0.8b: random weights of the real 0.8B shape, the
q8 wasm format (build/bench/0.8b/fused-q8, shared with `make bench`). Writes bench/results/threads.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.page_harness import RESULTS, WORK, bundle_for, chromium_version, generate, prompt_of
from devtools.chromium import CHROMIUM, OFFLINE_FLAGS
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving

log = logging.getLogger("bench.threads")

PREFILLS = (128, 512)
DECODE_TOKENS = {"tiny": 256, "0.8b": 64}
WARM_UP = {"tiny": 4, "0.8b": 2}
REPEATS = {"tiny": 5, "0.8b": 2}  # the 0.8B's prefill-512 takes tens of seconds a run here
TIMEOUT_MS = 900_000


@contextmanager
def pages(url: str, thread_counts: list[int]) -> Iterator[dict[int, Any]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS, headless=True)
        try:
            opened = {}
            for threads in thread_counts:  # one after the other: a cold load each, then from cache
                page = browser.new_context().new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"{url}?backend=wasm&threads={threads}")
                page.evaluate("app.ready")
                info = page.evaluate("app.info()")
                if info["threads"] != threads:
                    raise RuntimeError(f"asked for {threads} threads, the page runs {info['threads']}")
                opened[threads] = page
            yield opened
        finally:
            browser.close()


def measure(model: str, bundle: Path, thread_counts: list[int], repeats: int, site: Path) -> dict:
    build_site(SiteSpec(site, [(model, bundle)], {model: "bench.threads"}))
    samples: dict[int, dict[str, list[float]]] = {t: {} for t in thread_counts}
    with serving(site) as url, pages(url, thread_counts) as opened:
        first = opened[thread_counts[0]]
        decode = {"prompt": "Hello", "maxNewTokens": DECODE_TOKENS[model], "greedy": True}
        decode["minNewTokens"] = decode["maxNewTokens"]
        for page in opened.values():
            for _ in range(WARM_UP[model]):
                generate(page, decode)
        for round_ in range(repeats):
            for threads, page in opened.items():  # interleaved: 1, 2, 1, 2, ...
                runs = samples[threads]
                for n in PREFILLS:
                    # A prompt of its own each time: the prefix cache would reuse a repeated one.
                    prompt = prompt_of(first, n, lead=f"Round {round_}, {threads} threads, {n} tokens. ")
                    stats = generate(page, {"prompt": prompt, "maxNewTokens": 1, "greedy": True})
                    assert stats["reusedTokens"] < 16, stats  # at most the shared words of the lead
                    runs.setdefault(f"prefill_{n}_ms", []).append(stats["prefillMs"])
                    runs.setdefault(f"prefill_{n}_tokens", []).append(stats["promptTokens"])
                stats = generate(page, decode)
                runs.setdefault("decode_ms_per_token", []).append(1000 / stats["decodeTokensPerSecond"])
                runs.setdefault("load_average_1min", []).append(os.getloadavg()[0])
                log.info("%s %d threads: %s", model, threads, {k: round(v[-1], 1) for k, v in runs.items()})
        load = {t: page.evaluate("app.info().timings") for t, page in opened.items()}
    return {
        str(t): {
            "median": {k: statistics.median(v) for k, v in runs.items()},
            "samples": runs,
            "load_ms": load[t],
        }
        for t, runs in samples.items()
    }


def markdown(results: dict) -> str:
    lines = [
        "# wasm threads in the page (1 vs 2)",
        "",
        f"Measured {results['date']} on {results['machine']}; {results['chromium']}; "
        "onnxruntime-web 1.30 wasm (the page's default build), the real page "
        "(`?backend=wasm&threads=N`, cross-origin isolated), "
        f"medians of interleaved runs after warm-up (runs: {results['repeats']}). "
        f"Reproduce: `{results['command']}`.",
        "",
        "| model | threads | prefill-128 | prefill-512 | decode | vs 1 thread (prefill-512 / decode) |",
        "|---|---|---|---|---|---|",
    ]
    for model, by_threads in results["models"].items():
        base = by_threads[min(by_threads, key=int)]["median"]
        for threads, entry in sorted(by_threads.items(), key=lambda kv: int(kv[0])):
            m = entry["median"]
            ratio = (
                f"{base['prefill_512_ms'] / m['prefill_512_ms']:.2f}x / "
                f"{base['decode_ms_per_token'] / m['decode_ms_per_token']:.2f}x"
            )
            lines.append(
                f"| {model} | {threads} | {m['prefill_128_ms']:.0f} ms | {m['prefill_512_ms']:.0f} ms "
                f"| {m['decode_ms_per_token']:.1f} ms/token ({1000 / m['decode_ms_per_token']:.1f} tokens/s) "
                f"| {ratio} |"
            )
    loads = [
        value
        for by_threads in results["models"].values()
        for entry in by_threads.values()
        for value in entry["samples"]["load_average_1min"]
    ]
    lines += [
        "",
        "The machine is shared: its 1-minute load average during the runs was "
        f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores "
        "(above the core count, a second thread has no core of its own).",
        "",
        results["note"],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,0.8b")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=None, help="runs per model (default: 5 tiny, 2 0.8b)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    thread_counts = [int(t) for t in args.threads.split(",")]
    from datetime import date

    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared",
        "chromium": chromium_version(),
        "repeats": {m: args.repeats or REPEATS[m] for m in args.models.split(",")},
        "command": " ".join(["python -m bench.threads", *(sys.argv[1:] if argv is None else argv)]),
        "models": {},
        "note": (
            "Decode is per token at a short context; prefill is one generate() with maxNewTokens 1 "
            "(prefill chunk 256). The page's default (`threads: 'auto'`) is one thread per core, at most 4: "
            "only 1 and 2 could be measured on this 2-core machine."
        ),
    }
    for model in args.models.split(","):
        bundle = bundle_for(model)
        site = WORK / "threads" / "site"
        repeats = args.repeats or REPEATS[model]
        results["models"][model] = measure(model, bundle, thread_counts, repeats, site)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "threads.md").write_text(markdown(results))
    log.info("wrote %s", RESULTS / "threads.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
