"""Turn bench/results/results.json into bench.md (markdown tables) and bench.png (bar charts)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Each variant is compared with the onnxruntime-genai graph of the same weight precision.
PEER_OF = {
    "fused-fp32": "genai-fp32",
    "portable-fp32": "genai-fp32",
    "fused-q4": "genai-int4",
    "fused-q8": "genai-int4",
    "fused-q8-fp16head": "genai-int4",
    "hf-torch": "genai-fp32",
}


def _ms(timings: dict, variant: str, metric: str) -> float | None:
    entry = timings.get(variant, {}).get(metric)
    return None if entry is None else float(entry["median_ms"])


def _cell(value: float | None, peer: float | None) -> str:
    if value is None:
        return "–"
    text = f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    if peer:
        text += f" ({value / peer:.2f}×)"
    return text


def _metrics(timings: dict) -> list[str]:
    seen: list[str] = []
    for per_variant in timings.values():
        seen += [m for m in per_variant if m not in seen]
    return sorted(seen, key=lambda m: (m.split("_")[0] != "prefill", int(m.split("_")[1])))


def _table(title: str, timings: dict, extra: dict[str, dict[str, str]] | None = None) -> list[str]:
    metrics = _metrics(timings)
    extra = extra or {}
    extra_columns = sorted({c for cols in extra.values() for c in cols})
    header = ["variant", *[_label(m) for m in metrics], *extra_columns]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant in timings:
        peer = PEER_OF.get(variant)
        cells = [_cell(_ms(timings, variant, m), _ms(timings, peer, m) if peer else None) for m in metrics]
        cells += [extra.get(variant, {}).get(c, "–") for c in extra_columns]
        lines.append("| " + " | ".join([variant, *cells]) + " |")
    return [*lines, ""]


def _label(metric: str) -> str:
    kind, size = metric.split("_")
    return f"prefill {size} (ms)" if kind == "prefill" else f"decode @{size} (ms/tok)"


def markdown(results: dict) -> str:
    lines = [
        "# Qwen3.5 export benchmark: this project vs onnxruntime-genai builder",
        "",
        "Random checkpoints (same seed and config for both exporters). Medians of interleaved repeats;",
        "(x×) = ratio to the onnxruntime-genai graph of the same precision (< 1 is faster).",
        "Decode runs one token on synthesized caches of the given past length.",
        "",
    ]
    for model, data in results["models"].items():
        lines += [f"## {model}", ""]
        if "loadavg" in data:
            lines += [f"1-min load average before timing: {data['loadavg']:.1f} (2 cores).", ""]
        rss = {v: {"peak RSS (MB)": f"{mb:.0f}"} for v, mb in data.get("peak_rss_mb", {}).items()}
        for threads, run in data.get("native", {}).items():
            lines += _table(
                f"onnxruntime {results['versions']['onnxruntime']} CPU, {threads} thread(s)",
                run["timings"],
                rss,
            )
        if "browser" in data:
            web = data["browser"]
            load = {v: {"load (ms)": f"{ms:.0f}"} for v, ms in web["load_ms"].items()}
            lines += _table("onnxruntime-web wasm, Chromium headless, 1 thread", web["timings"], load)
            lines += [f"JS Float32Array sum in the same page: {web['js_sum_gb_per_s']:.1f} GB/s.", ""]
        if data.get("notes"):
            lines += [f"- {note}" for note in data["notes"]] + [""]
    if results.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in results["notes"]], ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for model, data in results["models"].items():
        for threads, run in data.get("native", {}).items():
            panels.append((f"{model} native {threads}t", run["timings"]))
        if "browser" in data:
            panels.append((f"{model} wasm 1t", data["browser"]["timings"]))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for axis, (title, timings) in zip(axes[0], panels, strict=True):
        metrics = _metrics(timings)
        width = 0.8 / max(1, len(timings))
        for index, variant in enumerate(timings):
            values = [_ms(timings, variant, m) or 0.0 for m in metrics]
            axis.bar([i + index * width for i in range(len(metrics))], values, width, label=variant)
        axis.set_xticks(
            [i + 0.4 - width / 2 for i in range(len(metrics))], [_label(m) for m in metrics], rotation=30
        )
        axis.set_yscale("log")
        axis.set_ylabel("ms (log)")
        axis.set_title(title)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
