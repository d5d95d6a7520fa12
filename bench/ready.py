"""Time to ready in the real page, cold (a fresh browser profile) and warm (the same profile again).

  python -m bench.ready [--models tiny,0.8b] [--rounds 3] [--static-from GITREV] [--out NAME]

Per round: a new browser context loads the page (`?backend=wasm`) until `app.ready`, then a second page of
that context loads it again, now with the weights (and, from the first visit on, the shell) in browser
storage. Recorded: navigation to ready, and the worker's own phases (`app.info().timings`: Python start,
manifest, weights, onnxruntime-web start, session; they overlap where the page overlaps them).
`--static-from GITREV` builds the site with that revision's qwen35web/web/static (the page before a
change), so before/after figures come from the same command. Bundles as in bench.threads.
Writes bench/results/ready-NAME.json (NAME defaults to the static revision or "current").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.threads import RESULTS, WORK, bundle_for
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
        ["git", "ls-tree", "--name-only", f"{revision}:{STATIC}"],
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


def measure(url: str, rounds: int) -> dict[str, list[dict]]:
    from playwright.sync_api import sync_playwright

    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS, headless=True)
        try:
            for _ in range(rounds):
                context = browser.new_context()
                for kind in ("cold", "warm"):
                    run = load_once(context, url)
                    run["load_average_1min"] = os.getloadavg()[0]
                    runs[kind].append(run)
                    log.info("%s: %s", kind, run)
                context.close()
        finally:
            browser.close()
    return runs


def medians(runs: list[dict]) -> dict[str, float]:
    keys = {key for run in runs for key in run["timings"]}
    summary = {key: statistics.median(run["timings"].get(key, 0) for run in runs) for key in sorted(keys)}
    summary["navigation_to_ready_ms"] = statistics.median(run["navigation_to_ready_ms"] for run in runs)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ready", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--static-from", default=None, help="git revision whose page files to time")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    name = args.out or args.static_from or "current"
    results: dict[str, Any] = {
        "static": args.static_from or "working tree",
        "cores": os.cpu_count(),
        "models": {},
    }
    for model in args.models.split(","):
        site = WORK / "ready" / "site"
        build_site(SiteSpec(site, [(model, bundle_for(model))], {model: "bench.ready"}))
        if args.static_from:
            overlay_static(site, args.static_from)
        with serving(site) as url:
            runs = measure(url, args.rounds)
        results["models"][model] = {kind: {"median": medians(r), "runs": r} for kind, r in runs.items()}
        log.info("%s: %s", model, {kind: v["median"] for kind, v in results["models"][model].items()})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ready-{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
