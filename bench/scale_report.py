"""bench.scale_page's results file: rows merged across runs, and the Markdown table written from them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from devtools.chromium import CHROMIUM


def _key(row: dict) -> tuple:
    return (row["backend"], row["model"], row.get("threads"))


def merge(path: Path, rows: list[dict], command: str) -> dict[str, Any]:
    """The results file with `rows` replacing any earlier row of the same backend, model and threads."""
    results: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    for row in rows:
        row["command"] = command
    fresh = {_key(row) for row in rows}
    kept = [row for row in results["rows"] if _key(row) not in fresh]
    results["rows"] = sorted(kept + rows, key=lambda r: (r["backend"], r["model"], r.get("threads") or 0))
    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False)
    results["chromium"] = done.stdout.strip()
    results["machine"] = f"{os.cpu_count()} cores ({platform.machine()}), shared"
    return results


def _gb(value: int | float | None) -> str:
    return "-" if value is None else f"{value / 1e9:.2f} GB"


def _load_span(row: dict) -> str:
    loads = row.get("samples", {}).get("load_average_1min", [])
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-"


def _result(row: dict) -> str:
    if "rss_cap_gb" in row:
        phase = (row.get("last_progress") or {}).get("phase", "?")
        return (
            f"stopped by the bench: browser RSS passed {row['rss_cap_gb']} GB in phase "
            f"`{phase}`, {row.get('failed_after_s')} s after navigation"
        )
    return str(row.get("error", "ok"))


def _wasm_lines(rows: list[dict]) -> list[str]:
    lines = [
        "| model | format | bundle | threads | ready | session | prefill-128 | decode | peak RSS "
        "(renderer / browser) | load avg | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        median = row.get("median", {})
        timings = row.get("timings") or {}
        prefill = f"{median['prefill_128_ms']:.0f} ms" if "prefill_128_ms" in median else "-"
        decode = f"{median['decode_ms_per_token']:.0f} ms/token" if "decode_ms_per_token" in median else "-"
        session = timings.get("sessionMs")
        lines.append(
            f"| {row['model']} | {row.get('dtype')} | {_gb(row.get('bundle_bytes'))} | {row['threads']} "
            f"| {row.get('ready_ms', '-')} ms | {'-' if session is None else f'{session:.0f} ms'} "
            f"| {prefill} | {decode} | {row.get('peak_rss_largest_process_gb')} / "
            f"{row.get('peak_rss_browser_gb')} GB | {_load_span(row)} | {_result(row)} |"
        )
    return lines


def _webgpu_lines(rows: list[dict]) -> list[str]:
    lines = [
        "| model | format | bundle | largest file | ready | page tokens | native, as exported | native, fp32 "
        "compute | equal | peak RSS (largest / browser) | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row["model"],
            row.get("dtype"),
            _gb(row.get("bundle_bytes")),
            _gb(row.get("largest_file_bytes")),
            f"{row.get('ready_ms', '-')} ms",
            row.get("page_tokens", "-"),
            row.get("native_tokens", "-"),
            row.get("native_fp32_compute_tokens", "-"),
            row.get("tokens_equal", "-"),
            f"{row.get('peak_rss_largest_process_gb')} / {row.get('peak_rss_browser_gb')} GB",
            _result(row),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def markdown(results: dict) -> str:
    rows = results["rows"]
    commands = sorted({row["command"] for row in rows})
    lines = [
        "# Every size in the page (random weights of the real shapes)",
        "",
        f"{results['machine']}; {results['chromium']}; onnxruntime-web 1.30, the real page "
        "(`qwen35web site build`, served cross-origin isolated). Reproduce: "
        + ", ".join(f"`{c}`" for c in commands)
        + ".",
        "",
        "## wasm",
        "",
        "Prefill-128 is one generate() of a 128-token prompt with one new token; decode is ms per token of "
        "a greedy run at a short context (the runtime's own timings), medians of interleaved rounds after a "
        "warm-up. Ready is navigation to `app.ready` (download, hash, cache, session): cold for a browser's "
        "first page, later pages of the same browser find Pyodide (and a bundle they share) cached.",
        "",
        *_wasm_lines([r for r in rows if r["backend"] == "wasm"]),
        "",
        "## WebGPU (SwiftShader: a correctness check, not a timing)",
        "",
        "The first greedy tokens of one prompt in the page against qwen35web.runtime on CPython + "
        "onnxruntime (CPU) on the same bundle, as exported (MatMulNBits accuracy level 4: the CPU kernel "
        "rounds activations to int8) and with its MatMulNBits computing in fp32 as the WebGPU kernels do "
        "here (bench/scale_native.py); `equal` compares with the latter.",
        "",
        *_webgpu_lines([r for r in rows if r["backend"] == "webgpu"]),
        "",
    ]
    return "\n".join(lines)
