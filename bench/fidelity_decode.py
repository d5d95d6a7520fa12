"""Native decode time of q4 recipes against the onnxruntime-genai builder's int4, in one run.

A 0.8B-shaped random checkpoint (bench/configs/qwen3_5-0.8b.json, the same one `python -m bench
peers` builds under build/bench/0.8b/, reused when present, as is its fp32 export with `--logits
last`): ours in each recipe, quantized from that fp32 export (bench.fidelity_derive), and the
builder's (`-p int4 -e cpu`; it computes every position's logits, one at a decode step). All graphs
are loaded in one bench.native worker and timed round-robin (A B C A B C ...), one decode step at a
past of 128 tokens, 2 threads then 1. The bytes each graph reads per token are counted from the
graph itself (bench.fidelity_builder's graph_cost). Random weights: decode time depends only on
shapes and formats, not on values.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.artifacts import build_checkpoint, export_ours, genai_available
from bench.fidelity_builder import build, graph_cost
from bench.fidelity_derive import derive_bundle

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "bench"
MODEL = "0.8b"
PLAN = "decode:128"
THREADS = (2, 1)
REPEATS = 7


def _derive(fp32_bundle: Path, text_checkpoint: Path, name: str, dtype: str, knobs: dict[str, Any]) -> Path:
    """Our bundle of `dtype` with the given knobs, quantized from the fp32 export (bench.fidelity_derive:
    the graph a real export of the recipe writes); the directory name is the recipe's."""
    out = WORK / MODEL / f"derived-{name}"
    fresh = (out / "model.onnx").exists() and (out / "model.onnx").stat().st_mtime_ns >= (
        fp32_bundle / "model.onnx"
    ).stat().st_mtime_ns
    if not fresh:
        derive_bundle(fp32_bundle, out, text_checkpoint, dtype, knobs)
    return out / "model.onnx"


def _time_natively(flags: list[str], checkpoint: Path, threads: int) -> dict[str, Any] | None:
    """One bench.native worker (its own process: thread settings stay per run)."""
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
        args += ["--plan", PLAN, "--repeats", str(REPEATS), "--out", str(out)]
        args += [arg for flag in flags for arg in ("--variant", flag)]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log.warning("bench.native failed: %s", result.stderr[-2000:])
            return None
        return json.loads(out.read_text())


def decode_times(recipes: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """recipes: {name: (dtype, knobs)} of ours; returns timings (median ms per decode step by
    thread count), each graph's bytes per token, and the 1-minute load average around the runs."""
    base = WORK / MODEL
    base.mkdir(parents=True, exist_ok=True)
    text = build_checkpoint(base / "ckpt-text", MODEL, "text")
    graphs: dict[str, tuple[str, Path]] = {}
    fp32 = export_ours(text, base / "fused-fp32", "fused", "fp32")  # what `bench peers` exports too
    if fp32 is not None:
        for name, (dtype, knobs) in recipes.items():
            graphs[name] = ("ours", _derive(fp32.parent, text, name, dtype, knobs))
    if genai_available():
        vl = build_checkpoint(base / "ckpt-vl", MODEL, "vl")
        graphs["builder-int4"] = (
            "genai",
            build(vl, base / "genai-int4", "int4", "cpu"),
        )  # `bench peers`' too
    flags = [f"{name}={engine}={path}" for name, (engine, path) in graphs.items()]
    result: dict[str, Any] = {
        "model": MODEL,
        "plan": PLAN,
        "bytes_per_token": {name: graph_cost(path).bytes_per_token for name, (_, path) in graphs.items()},
        "threads": {},
    }
    for threads in THREADS:
        before = os.getloadavg()[0]
        run = _time_natively(flags, text, threads)
        after = os.getloadavg()[0]
        if run is None:
            result["threads"][str(threads)] = {"error": "bench.native failed (see the log)"}
            continue
        result["threads"][str(threads)] = {
            "ms_per_token": {
                name: t[PLAN.replace(":", "_")]["median_ms"] for name, t in run["timings"].items()
            },
            "loadavg_1min": [before, after],
        }
        log.info("decode, %d threads: %s", threads, result["threads"][str(threads)])
    return result


def markdown(result: dict[str, Any]) -> str:
    names = list(result["bytes_per_token"])
    lines = [
        "## Native decode time: ours vs the builder's int4 (0.8B shape, random weights)",
        "",
        "One bench.native worker per thread count, all graphs loaded together and timed round-robin; "
        "median ms per decode step at a past of 128 tokens (onnxruntime CPU). Bytes per token counted "
        "from each graph. 1-minute load average before and after each run (2 shared cores).",
        "",
        "| graph | bytes/token (graph) | "
        + " | ".join(f"{t} threads ms/token" for t in result["threads"])
        + " |",
        "|---|---:|" + "---:|" * len(result["threads"]),
    ]
    builder = {t: r.get("ms_per_token", {}).get("builder-int4") for t, r in result["threads"].items()}
    for name in names:
        cells = []
        for threads, run in result["threads"].items():
            ms = run.get("ms_per_token", {}).get(name)
            peer = builder[threads]
            ratio = (
                f" ({peer / ms:.2f}× the builder's speed)" if ms and peer and name != "builder-int4" else ""
            )
            cells.append("—" if ms is None else f"{ms:.1f}{ratio}")
        lines.append(
            f"| {name} | {result['bytes_per_token'][name] / 1e9:.3f} GB | " + " | ".join(cells) + " |"
        )
    loads = ", ".join(
        f"{t} threads {r['loadavg_1min'][0]:.2f} → {r['loadavg_1min'][1]:.2f}"
        for t, r in result["threads"].items()
        if "loadavg_1min" in r
    )
    lines += ["", f"Load average (1 min): {loads}.", ""]
    return "\n".join(lines)
