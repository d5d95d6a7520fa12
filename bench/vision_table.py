"""Images of three sizes through the real 0.8B tower shape (random weights) at the default caps:
peak memory and time, natively and in Chromium's wasm.

    .venv/bin/python -m bench.vision_table [--sizes 448x448,1920x1080,4032x3024] [--no-page] [--dtype fp32]

Each image is resized as the runtime resizes it (smart_resize with the backend's per-image cap from
runtime/vision/limits.py) and its patches run through the vision graph (bench.vision's 0.8B
checkpoint, exported under build/bench/vision/). Natively: one fresh process per image
(onnxruntime CPU, 2 threads), its peak RSS (ru_maxrss) and the RSS after loading the session, so
the image's own share shows. In the page: one fresh headless Chromium per image running the graph
in onnxruntime-web wasm (1 thread, bench/web/harness.html); its renderer process's peak RSS (VmHWM,
which holds the wasm heap: wasm memory only grows) is read from /proc. Writes
bench/results/vision_table.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.vision import PROCESSOR, checkpoint_for, export_format

log = logging.getLogger("bench.vision_table")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TOWER = "0.8b"


def target(width: int, height: int, backend: str) -> dict[str, int]:
    """The resized size and its grid at the backend's default cap."""
    from qwen35web.runtime.vision.limits import DEFAULT_LIMITS
    from qwen35web.runtime.vision.processor_config import smart_resize, spec_from_preprocessor_config

    spec = spec_from_preprocessor_config(PROCESSOR).capped(DEFAULT_LIMITS[backend].per_image)
    new_h, new_w = smart_resize(height, width, spec)
    _, grid_h, grid_w = spec.grid_thw(new_h, new_w)
    return {
        "height": new_h,
        "width": new_w,
        "grid_h": grid_h,
        "grid_w": grid_w,
        "tokens": spec.num_tokens(new_h, new_w),
    }


def _native_point(graph: str, grid_h: int, grid_w: int) -> dict[str, float]:
    """In this fresh process: load the graph, run one image of that grid, report time and RSS."""
    import resource

    import numpy as np
    import onnxruntime as ort

    def rss_mb() -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    loaded = rss_mb()
    pixels = np.random.default_rng(0).uniform(-1, 1, (grid_h * grid_w, 1536)).astype(np.float32)
    grid = np.array([[1, grid_h, grid_w]], dtype=np.int64)
    started = time.perf_counter()
    session.run(None, {"pixel_values": pixels, "image_grid_thw": grid})
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_rss_mb": peak, "rss_after_load_mb": loaded}


def measure_native(graph: Path, size: dict[str, int]) -> dict[str, Any]:
    point = json.dumps([str(graph), size["grid_h"], size["grid_w"]])
    command = [sys.executable, "-m", "bench.vision_table", "--point", point]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _renderer_peak_mb() -> float:
    """The largest VmHWM among this process's Chromium renderers (the page's: it ran the graph)."""
    peaks: list[float] = []
    for pid in _descendants(os.getpid()):
        try:
            if b"--type=renderer" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks.extend(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM"))
    return max(peaks, default=0.0)


def measure_page(graph: Path, size: dict[str, int]) -> dict[str, Any]:
    from bench.browser import harness_page
    from bench.vision_chromium import site_with
    from qwen35web.export.vision.export import external_data_files

    site = site_with({"tower": graph})
    feeds = {
        "pixel_values": {"type": "float32", "dims": [size["grid_h"] * size["grid_w"], 1536]},
        "image_grid_thw": {"type": "int64", "dims": [1, 3], "values": [1, size["grid_h"], size["grid_w"]]},
    }
    with harness_page(site) as (page, base):
        url, data = f"{base}/models/tower/{graph.name}", list(external_data_files(graph))
        page.evaluate("(a) => window.bench.load(...a)", ["tower", url, data, None, 0])
        loaded = _renderer_peak_mb()
        try:
            ms = page.evaluate("(a) => window.bench.timeFeeds(...a)", ["tower", feeds, 1])
        except Exception as err:  # a wasm allocation failure surfaces as a page error
            return {"error": str(err).strip().splitlines()[0][:200]}
        return {"seconds": ms / 1000, "peak_rss_mb": _renderer_peak_mb(), "rss_after_load_mb": loaded}


def report(data: dict[str, Any]) -> str:
    lines = [
        f"# Images through the 0.8B vision tower at the default caps ({data['dtype']}, random weights)",
        "",
        f"`{data['command']}`, 2 shared CPU cores; 1-minute load average {data['load_before']:.1f} "
        f"before and {data['load_after']:.1f} after (others' work ran beside it: times are indicative).",
        "Native: onnxruntime CPU, 2 threads, a fresh process per image, peak RSS of the process. Page:",
        "onnxruntime-web wasm in headless Chromium, 1 thread, a fresh browser per image, peak RSS (VmHWM) of",
        "the renderer that ran the graph (the wasm heap lives there and never shrinks). 'after load' is the",
        "RSS with the session created, before the image: the difference is the image's share.",
        "",
        "| image | where | cap (tokens) | resized to | patches | tokens | vision graph s | peak RSS MB "
        "| after load MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        size, got = row["size"], row["result"]
        cells = f"| {row['image']} | {row['where']} | {row['cap']} | {size['width']}x{size['height']} | "
        cells += f"{size['grid_h'] * size['grid_w']} | {size['tokens']} | "
        if "error" in got:
            lines.append(cells + f"failed: {got['error']} | | |")
        else:
            lines.append(
                cells + f"{got['seconds']:.1f} | {got['peak_rss_mb']:.0f} | {got['rss_after_load_mb']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vision_table")
    parser.add_argument("--sizes", default="448x448,1920x1080,4032x3024")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--no-page", action="store_true")
    parser.add_argument("--point", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        print(json.dumps(_native_point(*json.loads(args.point))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from qwen35web.runtime.vision.limits import DEFAULT_LIMITS

    graph = export_format(checkpoint_for(TOWER), TOWER, args.dtype)[0]
    load_before, rows = os.getloadavg()[0], []
    places = [("native", "native", measure_native)] + (
        [] if args.no_page else [("page (wasm)", "wasm", measure_page)]
    )
    for image in args.sizes.split(","):
        width, height = (int(v) for v in image.split("x"))
        for where, backend, measure in places:
            size = target(width, height, backend)
            result = measure(graph, size)
            rows.append(
                {
                    "image": image,
                    "where": where,
                    "cap": DEFAULT_LIMITS[backend].per_image,
                    "size": size,
                    "result": result,
                }
            )
            log.info("%s %s: %s", image, where, result)
    command = "python -m bench.vision_table" + (f" {' '.join(argv)}" if argv else "")
    data = {
        "dtype": args.dtype,
        "command": command,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vision_table.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "vision_table.md").write_text(report(data))
    print(report(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
