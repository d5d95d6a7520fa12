"""`make bench`: this project's exports vs onnxruntime-genai's, native onnxruntime and onnxruntime-web.

  python -m bench peers [--models tiny,0.8b] [--no-web] [--web-0.8b] [--quick]
  (or python -m bench.peers ...)

Builds random checkpoints and exports under build/bench/ (reused when present), times them, and
writes bench/results/{results.json, bench.md, bench.png}. Not part of `make test`: minutes, not seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from bench import report
from bench.artifacts import Variant, build_variants, genai_available, project_supports_q4

log = logging.getLogger("bench.peers")

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "bench"
RESULTS = REPO / "bench" / "results"
THREADS = (2, 1)
WASM_FP32_NOTE = (
    "0.8B fp32 graphs are not timed in wasm: session creation fails with std::bad_alloc "
    "(3 GB of weights in the 4 GB wasm32 heap); the int8 (q8) and int4 graphs run there. "
    "fused-q8-fp16head (q8 with the tied embedding/head as fp16 E^T, computed in fp32) is timed in a "
    "page of its own (its 2 GB beside the peer's session exhausted the heap at prefill 512); its ratios "
    "are to genai-int4 timed in the other page. Ours export with --logits last (the genai graphs "
    "compute all positions' logits)."
)


def _plans(model: str, quick: bool) -> tuple[str, str, int]:
    """(ORT plan, torch plan, repeats): 0.8B adds a long-context decode; torch skips it (its prefill)."""
    base = "prefill:128,prefill:512,decode:128"
    if model == "tiny":
        return base, base, 5 if quick else 11
    return base + ",decode:2048", base, 3 if quick else 5


def _native(variants: list[str], checkpoint: Path, threads: int, plan: str, repeats: int) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "native.json"
        args = [
            sys.executable,
            "-m",
            "bench.native",
            "--threads",
            str(threads),
            "--checkpoint",
            str(checkpoint),
        ]
        args += ["--plan", plan, "--repeats", str(repeats), "--out", str(out)]
        for variant in variants:
            args += ["--variant", variant]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log.warning("native run failed: %s", result.stderr[-2000:])
            return None
        return json.loads(out.read_text())


def _ort_flag(variant: Variant) -> str:
    return f"{variant.name}={variant.engine}={variant.model_path}"


def _native_runs(model: str, checkpoint: Path, variants: list[Variant], quick: bool) -> dict:
    ort_plan, torch_plan, repeats = _plans(model, quick)
    runs: dict[str, dict] = {}
    for threads in THREADS:
        ort_run = _native([_ort_flag(v) for v in variants], checkpoint, threads, ort_plan, repeats)
        torch_run = _native([f"hf-torch=torch={checkpoint}"], checkpoint, threads, torch_plan, repeats)
        timings = dict(ort_run["timings"]) if ort_run else {}
        if torch_run:
            timings.update(torch_run["timings"])
        runs[str(threads)] = {"timings": timings, "load_s": {**(ort_run or {}).get("load_s", {})}}
    return runs


def _peak_rss(checkpoint: Path, variants: list[Variant]) -> dict[str, float]:
    """One process per variant: load + prefill 128 + decode at 128, 1 thread; its peak RSS."""
    peaks: dict[str, float] = {}
    flags = [(v.name, _ort_flag(v)) for v in variants] + [("hf-torch", f"hf-torch=torch={checkpoint}")]
    for name, flag in flags:
        run = _native([flag], checkpoint, 1, "prefill:128,decode:128", 1)
        if run:
            peaks[name] = run["peak_rss_mb"]
    return peaks


def _browser(model: str, variants: list[Variant], quick: bool) -> dict | None:
    """All variants of a group share one page and are interleaved. 0.8B: only the int8/int4 graphs, since
    fp32 (3 GB) fails session creation with std::bad_alloc in the 4 GB wasm32 heap; fewer sizes and
    repeats, a wasm int4 prefill there takes many seconds."""
    from bench.browser import run_browser

    if model == "tiny":
        plan, groups, repeats = (
            [("prefill", 128), ("prefill", 512), ("decode", 128)],
            [variants],
            3 if quick else 7,
        )
    else:
        plan, repeats = [("decode", 128), ("decode", 2048), ("prefill", 128), ("prefill", 512)], 2
        # One page's sessions share one 4 GB wasm heap: the fp16-head graph (2 GB there) gets a page
        # of its own; with the peer beside it, the peer's prefill-512 (all 512 rows of logits, and
        # its int4 head dequantized) ran out of memory.
        pages = [("fused-q8-fp16head",), ("fused-q8", "fused-q4", "genai-int4")]
        groups = [[v for v in variants if v.name in names] for names in pages]
    merged: dict = {"threads": 1, "load_ms": {}, "timings": {}, "js_sum_gb_per_s": 0.0}
    errors = []
    for group in groups:
        try:
            result = run_browser(WORK / f"web-site-{model}", group, plan, repeats)
        except Exception as err:  # a page crash (e.g. wasm out of memory) must not lose the rest
            log.warning("browser run for %s %s failed: %s", model, [v.name for v in group], err)
            errors.append(f"{[v.name for v in group]}: {str(err)[:300]}")
            continue
        merged["load_ms"].update(result["load_ms"])
        merged["timings"].update(result["timings"])
        merged["js_sum_gb_per_s"] = max(merged["js_sum_gb_per_s"], result["js_sum_gb_per_s"])
    if errors:
        merged["errors"] = errors
    return merged if merged["timings"] else {"error": "; ".join(errors)}


def _versions() -> dict[str, str]:
    names = ["onnxruntime", "onnxruntime-genai", "torch", "transformers", "playwright"]
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    package = json.loads((REPO / "node_modules" / "onnxruntime-web" / "package.json").read_text())
    versions["onnxruntime-web"] = package["version"]
    return versions


def run(models: list[str], web: bool, web_big: bool, quick: bool) -> dict:
    results: dict = {"versions": _versions(), "models": {}, "notes": []}
    if not project_supports_q4():
        results["notes"].append("`python -m export --dtype q4` not available yet: no q4 variant of ours.")
    if not genai_available():
        results["notes"].append("onnxruntime-genai not installed: no peer variants.")
    if web and web_big:
        results["notes"].append(WASM_FP32_NOTE)
    for model in models:
        log.info("== %s: building", model)
        checkpoint, variants = build_variants(WORK, model)
        # Other processes on these 2 cores skew timings (2-thread runs most): record the load seen.
        data: dict = {
            "variants": {v.name: str(v.model_path) for v in variants},
            "loadavg": os.getloadavg()[0],
        }
        log.info("== %s: native timings", model)
        data["native"] = _native_runs(model, checkpoint, variants, quick)
        log.info("== %s: peak RSS", model)
        data["peak_rss_mb"] = _peak_rss(checkpoint, variants)
        if web and (model == "tiny" or web_big):
            log.info("== %s: browser timings", model)
            _attach_browser(data, _browser(model, variants, quick))
        results["models"][model] = data
        _write(results)  # keep what is done if a later model fails
    return results


def _attach_browser(data: dict, browser: dict | None) -> None:
    data.pop("browser", None)
    if browser and "error" not in browser:
        data["browser"] = browser
        data["notes"] = [f"browser run failed for {_first_line(e)}" for e in browser.get("errors", [])]
    elif browser:
        data["notes"] = [f"browser run failed: {_first_line(browser['error'])}"]


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0][:300]


def rerun_browser(models: list[str], quick: bool) -> None:
    results = json.loads((RESULTS / "results.json").read_text())
    for model in models:
        _, variants = build_variants(WORK, model)
        _attach_browser(results["models"].setdefault(model, {}), _browser(model, variants, quick))
        _write(results)


def _write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "bench.md").write_text(report.markdown(results))
    report.plot(results, RESULTS / "bench.png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,0.8b")
    parser.add_argument("--no-web", action="store_true", help="skip the Chromium wasm timings")
    parser.add_argument("--web-0.8b", dest="web_big", action="store_true", help="also time 0.8B in wasm")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--web-only", action="store_true", help="redo only the browser part of results.json")
    parser.add_argument("--report-only", action="store_true", help="re-render bench.md/png from results.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.report_only:
        _write(json.loads((RESULTS / "results.json").read_text()))
        return
    if args.web_only:
        rerun_browser(args.models.split(","), args.quick)
        return
    run(args.models.split(","), not args.no_web, args.web_big, args.quick)
    log.info("wrote %s", RESULTS)


if __name__ == "__main__":
    main()
