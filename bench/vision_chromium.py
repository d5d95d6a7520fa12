"""The vision tower in headless Chromium (onnxruntime-web wasm, 1 thread): time per 448x448 image.

    .venv/bin/python -m bench.vision_chromium [--towers 0.8b,4b] [--formats fp32,q8] [--repeats 3]

The graphs are bench.vision's (real-shape towers with random weights, exported once under
build/bench/vision/), run through bench/web/harness.html in Debian's Chromium, one image per call:
pixel_values [784, 1536] (random values: the time does not depend on them) and its grid (1, 28, 28).
Session creation and the first run are reported apart (the first run pays wasm warm-up and buffer
allocation). Writes bench/results/vision-chromium.{json,md}; the native and Node figures of the
same graphs are in bench/results/vision.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.browser import REPO, build_harness_site, harness_page
from bench.vision import SIDE, checkpoint_for, export_format
from devtools.chromium import CHROMIUM

log = logging.getLogger("bench.vision_chromium")
RESULTS = REPO / "bench" / "results"
SITE = REPO / "build" / "bench" / "vision-chromium-site"
PATCH, MERGE, TEMPORAL = 16, 2, 2


def image_feeds() -> dict[str, Any]:
    grid = SIDE // PATCH
    patch_values = 3 * TEMPORAL * PATCH * PATCH
    return {
        "pixel_values": {"type": "float32", "dims": [grid * grid, patch_values]},
        "image_grid_thw": {"type": "int64", "dims": [1, 3], "values": [1, grid, grid]},
    }


def site_with(graphs: dict[str, Path]) -> Path:
    build_harness_site(SITE, [])
    for name, graph in graphs.items():
        (SITE / "models" / name).symlink_to(graph.parent.resolve())
    return SITE


def measure(graphs: dict[str, Path], repeats: int) -> dict[str, Any]:
    from qwen35web.export.vision.export import external_data_files

    site = site_with(graphs)
    results: dict[str, Any] = {}
    with harness_page(site) as (page, base):
        for name, graph in graphs.items():
            data = list(external_data_files(graph))
            url = f"{base}/models/{name}/{graph.name}"
            load_ms = page.evaluate("(a) => window.bench.load(...a)", [name, url, data, None, 0])
            first_ms = page.evaluate("(a) => window.bench.timeFeeds(...a)", [name, image_feeds(), 1])
            samples = [
                page.evaluate("(a) => window.bench.timeFeeds(...a)", [name, image_feeds(), 1])
                for _ in range(repeats)
            ]
            page.evaluate("(n) => window.bench.release(n)", name)
            results[name] = {
                "session_ms": load_ms,
                "first_ms": first_ms,
                "median_ms": statistics.median(samples),
                "samples_ms": samples,
            }
            log.info(
                "%s: session %.0f ms, first %.0f ms, median %.0f ms",
                name,
                load_ms,
                first_ms,
                results[name]["median_ms"],
            )
    return results


def report(data: dict[str, Any]) -> str:
    lines = [
        "# Vision tower in Chromium wasm (random weights, real shapes)",
        "",
        f"`python -m bench.vision_chromium` on {data['machine']}; {data['chromium']}; onnxruntime-web "
        "1.30 wasm, 1 thread, through bench/web/harness.html. One 448x448 image per call (784 patches ->",
        f"196 image tokens). 1-minute load average before the runs: {data['load_before']:.1f} (2 cores,",
        "shared: times are indicative). Native and Node figures of the same graphs: vision.md.",
        "",
        "| tower | format | session (s) | first image (s) | per image (s, median) |",
        "|---|---|---|---|---|",
    ]
    for name, entry in data["runs"].items():
        tower, dtype = name.split("-", 1)
        lines.append(
            f"| {tower} | {dtype} | {entry['session_ms'] / 1000:.1f} | {entry['first_ms'] / 1000:.2f} | "
            f"{entry['median_ms'] / 1000:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vision_chromium")
    parser.add_argument("--towers", default="0.8b,4b")
    parser.add_argument("--formats", default="fp32,q8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    graphs = {}
    for tower in (t.strip() for t in args.towers.split(",") if t.strip()):
        checkpoint = checkpoint_for(tower)
        for dtype in (f.strip() for f in args.formats.split(",") if f.strip()):
            graphs[f"{tower}-{dtype}"] = export_format(checkpoint, tower, dtype)[0]
    data = {
        "machine": f"{os.cpu_count()} cores ({platform.machine()})",
        "chromium": subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip(),
        "load_before": os.getloadavg()[0],
        "runs": measure(graphs, args.repeats),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vision-chromium.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "vision-chromium.md").write_text(report(data))
    print(report(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
