"""onnxruntime-web (wasm EP, 1 thread) timings in headless Chromium through bench/web/harness.html.

The harness runs graphs directly (not through the app), so our bundles and onnxruntime-genai's graph
go through the same feeds code. A throwaway site links the harness, onnxruntime-web's dist folder
and the variant directories; a loopback HTTP server serves it.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import shutil
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.artifacts import Variant
from bench.graph_spec import describe, spec_json
from devtools.chromium import CHROMIUM, OFFLINE_FLAGS

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = OFFLINE_FLAGS  # wasm timing only: no WebGPU
MIN_SAMPLE_MS = 40.0
TIMEOUT_MS = 600_000


# Module scripts and wasm must be served with these types; the stdlib table may lack them.
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


def build_harness_site(site: Path, variants: list[Variant]) -> None:
    if site.exists():
        shutil.rmtree(site)
    (site / "models").mkdir(parents=True)
    for name in ("harness.html", "harness.mjs"):
        shutil.copy(REPO / "bench" / "web" / name, site / name)
    (site / "ort").symlink_to(REPO / "node_modules" / "onnxruntime-web" / "dist")
    for variant in variants:
        (site / "models" / variant.name).symlink_to(variant.model_path.parent.resolve())
    _write_warmup_model(site / "warmup.onnx")


@contextmanager
def _serving(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _vocab(variant: Variant) -> int:
    import json

    config = json.loads((variant.checkpoint / "config.json").read_text())
    return int(config.get("text_config", config)["vocab_size"])


def _write_warmup_model(path: Path) -> None:
    """An Identity graph loaded first, so wasm start-up is not billed to the first variant's load."""
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "warmup", [value], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    onnx.save(model, path)  # IR 8: onnxruntime-web 1.30 reads up to IR 13


def _load_all(page, base: str, variants: list[Variant]) -> dict[str, float]:
    load_ms: dict[str, float] = {}
    warmup_spec = {"position_rank": 2, "states": [], "logits": "y"}
    page.evaluate("(a) => window.bench.load(...a)", ["warmup", f"{base}/warmup.onnx", [], warmup_spec, 1])
    for variant in variants:
        data_files = sorted(p.name for p in variant.model_path.parent.glob("*.data"))
        model_url = f"{base}/models/{variant.name}/model.onnx"
        args = [variant.name, model_url, data_files, spec_json(describe(variant.model_path)), _vocab(variant)]
        load_ms[variant.name] = page.evaluate("(a) => window.bench.load(...a)", args)
        log.info("wasm: loaded %s in %.0f ms", variant.name, load_ms[variant.name])
    return load_ms


def _time_plan(page, names: list[str], plan: list[tuple[str, int]], repeats: int) -> dict:
    timings: dict[str, dict] = {name: {} for name in names}
    for kind, size in plan:
        calls: dict[str, int] = {}
        for name in names:
            page.evaluate("(a) => window.bench.time(...a)", [name, kind, size, 1])  # warm-up
            once = page.evaluate("(a) => window.bench.time(...a)", [name, kind, size, 1])
            calls[name] = int(min(50, max(1, MIN_SAMPLE_MS // max(once, 1e-3))))
        samples: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(repeats):
            for name in names:  # interleaved: A B C A B C ...
                samples[name].append(
                    page.evaluate("(a) => window.bench.time(...a)", [name, kind, size, calls[name]])
                )
        for name, values in samples.items():
            timings[name][f"{kind}_{size}"] = {"median_ms": statistics.median(values), "samples_ms": values}
            log.info("wasm %s %s_%d: %.2f ms", name, kind, size, statistics.median(values))
    return timings


@contextmanager
def harness_page(site: Path) -> Iterator[tuple[Any, str]]:
    """(page, base URL) of the harness served from `site` in a fresh headless Chromium."""
    from playwright.sync_api import sync_playwright

    with _serving(site) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base}/harness.html")
            page.wait_for_function("window.bench && window.bench.ready")
            yield page, base
        finally:
            browser.close()


def run_browser(site: Path, variants: list[Variant], plan: list[tuple[str, int]], repeats: int) -> dict:
    """Load every variant into one page (1 wasm thread) and time the plan round-robin."""
    build_harness_site(site, variants)
    with harness_page(site) as (page, base):
        bandwidth = page.evaluate("() => window.bench.bandwidth(256, 4)")
        load_ms = _load_all(page, base, variants)
        timings = _time_plan(page, [v.name for v in variants], plan, repeats)
    return {"threads": 1, "load_ms": load_ms, "timings": timings, "js_sum_gb_per_s": bandwidth["gbPerSecond"]}
