"""Time to ready in the real page, cold (a fresh browser profile) and warm (the same profile again).

  python -m bench.ready [--models tiny,0.8b] [--rounds 3] [--pages current,GITREV]

Per round and page variant: a new browser context loads the page (`?backend=wasm`) until `app.ready`, then
a second page of that context loads it again, now with the weights (and the shell, Python's memory image) in
browser storage. Recorded: navigation to ready, and the worker's own phases (`app.info().timings`: Python
start, manifest, weights, onnxruntime-web start, session; they overlap where the page overlaps them).
A variant is `current` (the working tree's page) or a git revision whose qwen35web/web/static replaces the
page files of the same site (vendor/, py/, models/ stay): before/after figures come from one command, the
variants interleaved round by round so machine load hits both alike. Bundles as in bench.page_harness.
Writes bench/results/ready-MODELS.{json,md} (MODELS: the --models value).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.page_harness import RESULTS, WORK, bundle_for
from devtools.chromium import CHROMIUM, OFFLINE_FLAGS
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving

log = logging.getLogger("bench.ready")

REPO = Path(__file__).resolve().parents[1]
STATIC = "qwen35web/web/static"
TIMEOUT_MS = 900_000


def overlay_static(site: Path, revision: str) -> None:
    """Replace the site's page files by those of `revision` (vendor/, py/ and models/ stay)."""
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", f"{revision}:{STATIC}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for path in site.iterdir():
        if path.is_file() and not path.name.startswith("."):
            path.unlink()
    for name in listing:
        data = subprocess.run(
            ["git", "show", f"{revision}:{STATIC}/{name}"], cwd=REPO, capture_output=True, check=True
        ).stdout
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)


def load_once(context: Any, url: str) -> dict:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    started = time.monotonic()
    page.goto(f"{url}?backend=wasm")
    page.evaluate("app.ready")
    ready_ms = (time.monotonic() - started) * 1000
    info = page.evaluate("app.info()")
    page.close()
    return {"navigation_to_ready_ms": round(ready_ms), "timings": info["timings"], "weights": info["weights"]}


def measure(urls: dict[str, str], rounds: int) -> dict[str, dict[str, list[dict]]]:
    """{variant: {"cold": [run, ...], "warm": [...]}}, the variants interleaved round by round."""
    from playwright.sync_api import sync_playwright

    runs: dict[str, dict[str, list[dict]]] = {v: {"cold": [], "warm": []} for v in urls}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS, headless=True)
        try:
            for _ in range(rounds):
                for variant, url in urls.items():
                    context = browser.new_context()
                    for kind in ("cold", "warm"):
                        run = load_once(context, url)
                        run["load_average_1min"] = os.getloadavg()[0]
                        runs[variant][kind].append(run)
                        log.info("%s %s: %s", variant, kind, run)
                    context.close()
        finally:
            browser.close()
    return runs


def medians(runs: list[dict]) -> dict[str, float]:
    keys = {key for run in runs for key in run["timings"]}
    summary = {key: statistics.median(run["timings"].get(key, 0) for run in runs) for key in sorted(keys)}
    summary["navigation_to_ready_ms"] = statistics.median(run["navigation_to_ready_ms"] for run in runs)
    return summary


def _row(model: str, variant: str, kind: str, m: dict[str, float]) -> str:
    parts = ["python", "pyodide", "manifest", "weights", "ort", "session"]
    cells = [f"{m[f'{p}Ms'] / 1000:.1f}" if f"{p}Ms" in m else "-" for p in parts]
    return (
        f"| {model} | {variant} | {kind} | {m['navigation_to_ready_ms'] / 1000:.1f} | "
        + " | ".join(cells)
        + " |"
    )


def markdown(results: dict) -> str:
    lines = [
        "# Time to ready (wasm, the real page)",
        "",
        f"Seconds; medians of {results['rounds']} interleaved rounds; {results['cores']} shared cores "
        f"(1-minute load average {results['load'][0]:.1f}-{results['load'][1]:.1f} during the runs). "
        "The worker's parts overlap in the current page (weights and onnxruntime-web load while Pyodide "
        "starts), so they do not add up. Reproduce: `python -m bench.ready "
        f"--models {','.join(results['models'])} --pages {','.join(results['pages'])}`.",
        "",
        "| model | page | load | navigation to ready | Python | Pyodide | manifest | weights | ORT start "
        "| session |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, by_variant in results["models"].items():
        for variant, by_kind in by_variant.items():
            for kind, entry in by_kind.items():
                lines.append(_row(model, variant, kind, entry["median"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ready", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pages", default="current", help="current and/or git revisions, comma-separated")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    variants = args.pages.split(",")
    results: dict[str, Any] = {
        "cores": os.cpu_count(),
        "rounds": args.rounds,
        "pages": variants,
        "models": {},
    }
    loads: list[float] = []
    for model in args.models.split(","):
        bundle = bundle_for(model)
        with contextlib.ExitStack() as stack:
            urls = {}
            for variant in variants:
                site = WORK / "ready" / f"site-{variant}"
                build_site(SiteSpec(site, [(model, bundle)], {model: "bench.ready"}))
                if variant != "current":
                    overlay_static(site, variant)
                urls[variant] = stack.enter_context(serving(site))
            runs = measure(urls, args.rounds)
        results["models"][model] = {
            variant: {kind: {"median": medians(r), "runs": r} for kind, r in by_kind.items()}
            for variant, by_kind in runs.items()
        }
        loads += [
            run["load_average_1min"] for by_kind in runs.values() for kind in by_kind.values() for run in kind
        ]
    results["load"] = [min(loads), max(loads)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.models.replace(",", "-")
    (RESULTS / f"ready-{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"ready-{name}.md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
