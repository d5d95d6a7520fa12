"""The vision tower at real shapes (random weights): graph sizes, time per 448x448 image, precision.

    .venv/bin/python -m bench.vision [--towers 0.8b,4b] [--repeats 3] [--no-web]

For each tower config in bench/configs/ (qwen3_5-<name>-vision.json) a VL checkpoint is drawn
(transformers' Qwen3_5VisionModel with seeded random weights and a tiny text model of the right
width), exported once per format (fp32, fp16, q8, q4) under build/bench/vision/, and timed on one
448x448 image (grid 1 x 28 x 28: 784 patches, 196 tokens) in onnxruntime CPU, one thread. The fp32
graph is compared with transformers' tower, the others with the fp32 graph. The patchify step is
timed both ways it could run in the page (pure Python, the ONNX graph) natively and, with node on
the PATH, in Pyodide and onnxruntime-web wasm. Writes bench/results/vision.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.patchify_python import patchify_python

log = logging.getLogger("bench.vision")

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "bench" / "vision"
RESULTS = REPO / "bench" / "results"
FORMATS = ("fp32", "fp16", "q8", "q4")
# Qwen3-VL's published image processor settings (Qwen3.5's are assumed the same).
PROCESSOR = {
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "size": {"shortest_edge": 65536, "longest_edge": 16777216},
}
SIDE = 448


def checkpoint_for(tower: str) -> Path:
    """A VL checkpoint with the tower's shape (drawn once, reused)."""
    from devtools.random_checkpoint import TINY_TEXT_CONFIG, write_vl_checkpoint

    directory = WORK / tower / "checkpoint"
    if (directory / "preprocessor_config.json").is_file():
        return directory
    vision = json.loads((REPO / "bench" / "configs" / f"qwen3_5-{tower}-vision.json").read_text())
    text = {**TINY_TEXT_CONFIG, "hidden_size": vision["out_hidden_size"]}
    shutil.rmtree(directory, ignore_errors=True)
    log.info("drawing the %s tower's checkpoint", tower)
    write_vl_checkpoint(directory, text, seed=0, vision_config=vision)
    (directory / "preprocessor_config.json").write_text(json.dumps(PROCESSOR, indent=2))
    return directory


def export_format(checkpoint: Path, tower: str, dtype: str) -> tuple[Path, float | None]:
    """(graph path, export seconds or None when reused)."""
    from qwen35web.export.vision.export import VISION_FILE, export_vision

    out = WORK / tower / dtype
    if (out / VISION_FILE).is_file():
        return out / VISION_FILE, None
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    export_vision(checkpoint, out, dtype)
    return out / VISION_FILE, time.perf_counter() - start


def graph_bytes(graph: Path) -> int:
    from qwen35web.export.vision.export import external_data_files

    return graph.stat().st_size + sum((graph.parent / f).stat().st_size for f in external_data_files(graph))


def sample_image() -> Any:
    """A 448x448 photo-like test card: smooth gradients plus noise."""
    from PIL import Image

    y, x = np.mgrid[0:SIDE, 0:SIDE]
    noise = np.random.default_rng(0).integers(0, 48, (SIDE, SIDE, 3))
    rgb = np.stack([x * 255 // SIDE, y * 255 // SIDE, (x + y) * 255 // (2 * SIDE)], axis=-1) + noise
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def session(path: Path, threads: int) -> tuple[ort.InferenceSession, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    start = time.perf_counter()
    made = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return made, time.perf_counter() - start


def timed_runs(run, repeats: int) -> dict[str, Any]:
    """One warm-up run, then `repeats` timed ones (seconds); returns the last output too."""
    output = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        output = run()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs_s": times, "output": output}


def compare(reference: np.ndarray, got: np.ndarray) -> dict[str, float]:
    reference, got = reference.astype(np.float64), got.astype(np.float64)
    cosine = float((reference * got).sum() / np.linalg.norm(reference) / np.linalg.norm(got))
    return {
        "max_abs": float(np.abs(reference - got).max()),
        "max_abs_over_max": float(np.abs(reference - got).max() / np.abs(reference).max()),
        "cosine": cosine,
        "reference_rms": float(np.sqrt((reference**2).mean())),
    }


def transformers_features(checkpoint: Path, pixels: np.ndarray, grid: np.ndarray) -> np.ndarray:
    import warnings

    import torch
    from transformers import Qwen3_5ForConditionalGeneration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Qwen3_5ForConditionalGeneration.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        features = model.model.visual(torch.from_numpy(pixels), grid_thw=torch.from_numpy(grid)).pooler_output
    return features.numpy()


def measure_tower(tower: str, inputs: dict[str, np.ndarray], repeats: int, threads: int) -> dict[str, Any]:
    checkpoint = checkpoint_for(tower)
    facts: dict[str, Any] = {"tower": tower, "formats": {}}
    reference = None
    for dtype in FORMATS:
        graph, export_s = export_format(checkpoint, tower, dtype)
        made, session_s = session(graph, threads)
        timing = timed_runs(lambda made=made: made.run(None, inputs)[0], repeats)
        output = timing.pop("output")
        if dtype == "fp32":
            reference = output
            expected = transformers_features(checkpoint, inputs["pixel_values"], inputs["image_grid_thw"])
            error = {"vs_transformers": compare(expected, output)}
        else:
            assert reference is not None
            error = {"vs_fp32": compare(reference, output)}
        facts["formats"][dtype] = {
            "bytes": graph_bytes(graph),
            "export_s": export_s,
            "session_s": session_s,
            **timing,
            **error,
        }
        log.info("%s %s: %.2f s per image", tower, dtype, timing["median_s"])
        del made
    facts["parameters"] = _parameter_count(checkpoint)
    return facts


def _parameter_count(checkpoint: Path) -> int:
    from qwen35web.export.checkpoint import Checkpoint

    entries = Checkpoint(checkpoint).entries
    return sum(int(np.prod(e.shape)) for n, e in entries.items() if n.startswith("model.visual."))


def prepared_inputs(work: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The 448x448 sample through the real preprocessing; the patchify graph and its image too."""
    from qwen35web.export.vision.patchify_graph import write_patchify_graph
    from qwen35web.runtime.native.image_decode import prepare_image
    from qwen35web.runtime.native.image_preprocessor import NativeImagePreprocessor
    from qwen35web.runtime.vision.processor_config import read_preprocessor_config

    work.mkdir(parents=True, exist_ok=True)
    (work / "preprocessor_config.json").write_text(json.dumps(PROCESSOR))
    spec = read_preprocessor_config(work)
    graph = write_patchify_graph(work, work)
    image = prepare_image(sample_image(), spec)
    pixel_values, grid = NativeImagePreprocessor(graph, spec)([sample_image()])
    assert grid.tolist() == [[1, SIDE // 16, SIDE // 16]]
    return {"pixel_values": pixel_values, "image_grid_thw": grid}, {
        "spec": spec,
        "graph": graph,
        "image": image,
    }


def measure_patchify(prepared: dict[str, Any], repeats: int, threads: int) -> dict[str, Any]:
    """Pure Python vs the graph, natively; both must give the same floats."""
    from qwen35web.runtime.vision.patchify import normalization_table

    spec, image = prepared["spec"], prepared["image"]
    table = normalization_table(spec)
    args = (image.rgb, image.height, image.width, table, spec.patch_size, spec.merge_size)
    python = timed_runs(lambda: patchify_python(*args, spec.temporal_patch_size), repeats)
    made, _ = session(prepared["graph"], threads)
    pixels = np.frombuffer(image.rgb, np.uint8).reshape(image.height, image.width, 3)
    graph = timed_runs(lambda: made.run(None, {"image": pixels})[0], repeats)
    same = np.array_equal(np.frombuffer(python.pop("output"), np.float32), graph.pop("output").ravel())
    assert same, "the pure-Python patchify and the graph disagree"
    return {"python_cpython": python, "graph_native": graph}


def _node(mode: str, spec: dict[str, Any], tmp: Path) -> dict[str, Any] | None:
    node = shutil.which("node")
    if node is None:
        return None
    spec_file = tmp / f"{mode}-spec.json"
    spec_file.write_text(json.dumps(spec))
    script = REPO / "bench" / "web" / "vision_node.mjs"
    done = subprocess.run(
        [node, str(script), mode, str(spec_file)], capture_output=True, text=True, timeout=3600
    )
    if done.returncode != 0:
        # Node ends with its version line; the error is the first line that names one.
        lines = done.stderr.strip().splitlines()
        error = next((line.strip() for line in lines if "Error" in line), lines[-1] if lines else "?")
        log.warning("node %s failed: %s", mode, error)
        return {"error": error}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_web(prepared: dict[str, Any], inputs: dict[str, np.ndarray], towers: list[str], repeats: int):
    """Pyodide pure-Python patchify, and the patchify and fp32/q8 vision graphs in wasm."""
    from qwen35web.export.vision.export import external_data_files
    from qwen35web.runtime.vision.patchify import normalization_table

    spec, image = prepared["spec"], prepared["image"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "rgb.bin").write_bytes(image.rgb)
        inputs["pixel_values"].tofile(tmp / "pixels.bin")
        inputs["image_grid_thw"].tofile(tmp / "grid.bin")
        geometry = {"height": image.height, "width": image.width, "patch": spec.patch_size}
        geometry |= {"merge": spec.merge_size, "temporal": spec.temporal_patch_size}
        results["patchify_pyodide"] = _node(
            "pyodide",
            {"rgb": str(tmp / "rgb.bin"), "table": normalization_table(spec), **geometry, "repeats": repeats},
            tmp,
        )
        rgb_feed = [
            {
                "name": "image",
                "type": "uint8",
                "dims": [image.height, image.width, 3],
                "file": str(tmp / "rgb.bin"),
            }
        ]
        results["patchify_wasm"] = _node(
            "wasm", {"graph": str(prepared["graph"]), "feeds": rgb_feed, "repeats": repeats}, tmp
        )
        feeds = [
            {
                "name": "pixel_values",
                "type": "float32",
                "dims": list(inputs["pixel_values"].shape),
                "file": str(tmp / "pixels.bin"),
            },
            {"name": "image_grid_thw", "type": "int64", "dims": [1, 3], "file": str(tmp / "grid.bin")},
        ]
        for tower in towers:
            for dtype in FORMATS:
                graph = WORK / tower / dtype / "vision_encoder.onnx"
                data = list(external_data_files(graph))
                spec_json = {
                    "graph": str(graph),
                    "data_files": data,
                    "feeds": feeds,
                    "repeats": max(1, repeats - 1),
                }
                results[f"{tower}_{dtype}_wasm"] = _node("wasm", spec_json, tmp)
                log.info("wasm %s %s: %s", tower, dtype, results[f"{tower}_{dtype}_wasm"])
    return results


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def _error_cell(entry: dict[str, Any]) -> str:
    error = entry.get("vs_transformers") or entry["vs_fp32"]
    against = "transformers" if "vs_transformers" in entry else "fp32"
    relative = f"{error['max_abs_over_max']:.1e} of max"
    return f"{error['max_abs']:.2e} ({relative}) / {error['cosine']:.6f} vs {against}"


def _best(formats: dict[str, Any], min_cosine: float, timing) -> str:
    """The fastest format whose output stays within `min_cosine` of fp32 (fp32 always qualifies)."""
    fitting = [d for d in FORMATS if d == "fp32" or formats[d]["vs_fp32"]["cosine"] >= min_cosine]
    timed = [(timing(d), d) for d in fitting if timing(d) is not None]
    return min(timed)[1] if timed else "n/a"


def _wasm_ms(web: dict[str, Any], key: str) -> float | None:
    entry = web.get(key) or {}
    return statistics.median(entry["runs_ms"]) if entry.get("runs_ms") else None


def _wasm_cell(web: dict[str, Any], key: str) -> str:
    ms = _wasm_ms(web, key)
    return f"{ms / 1000:.2f}" if ms is not None else (web.get(key) or {}).get("error", "-")


def _size_table(results: dict[str, Any]) -> list[str]:
    lines = ["| tower | parameters | fp32 MB | fp16 MB | q8 MB | q4 MB |", "|---|---|---|---|---|---|"]
    for tower, facts in results["towers"].items():
        sizes = " | ".join(_mb(facts["formats"][d]["bytes"]) for d in FORMATS)
        lines.append(f"| {tower} | {facts['parameters'] / 1e6:.1f} M | {sizes} |")
    return lines


def _time_table(results: dict[str, Any], web: dict[str, Any]) -> list[str]:
    lines = [
        "| tower | format | native s/image (best) | wasm s/image | session s | error |",
        "|---|---|---|---|---|---|",
    ]
    for tower, facts in results["towers"].items():
        for dtype in FORMATS:
            entry = facts["formats"][dtype]
            native = f"{entry['median_s']:.2f} ({entry['min_s']:.2f})"
            cells = [tower, dtype, native, _wasm_cell(web, f"{tower}_{dtype}_wasm")]
            cells += [f"{entry['session_s']:.1f}", _error_cell(entry)]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Fastest format within cosine 0.999 of fp32:", ""]
    for tower, facts in results["towers"].items():
        formats = facts["formats"]
        native = _best(formats, 0.999, lambda d, f=formats: f[d]["min_s"])
        wasm = _best(formats, 0.999, lambda d, t=tower: _wasm_ms(web, f"{t}_{d}_wasm"))
        lines.append(f"- {tower}: native CPU **{native}**, wasm **{wasm}**")
    return lines


def _patchify_table(results: dict[str, Any], web: dict[str, Any]) -> list[str]:
    patchify = results["patchify"]
    lines = ["| where | how | ms (median) |", "|---|---|---|"]
    lines.append(f"| CPython | pure Python | {patchify['python_cpython']['median_s'] * 1000:.1f} |")
    lines.append(f"| onnxruntime CPU | patchify graph | {patchify['graph_native']['median_s'] * 1000:.1f} |")
    for key, where, how in (
        ("patchify_pyodide", "Pyodide (Node)", "pure Python"),
        ("patchify_wasm", "onnxruntime-web wasm (Node)", "patchify graph"),
    ):
        ms = _wasm_ms(web, key)
        lines.append(f"| {where} | {how} | {'-' if ms is None else f'{ms:.1f}'} |")
    return lines


def report(results: dict[str, Any]) -> str:
    web = results.get("web") or {}
    lines = [
        "# Vision tower at real shapes (random weights)",
        "",
        "`python -m bench.vision` on the 2-core CPU machine (shared: times are indicative). One 448x448",
        "image = grid 1 x 28 x 28 = 784 patches -> 196 image tokens. Native: onnxruntime "
        f"{ort.__version__} CPU, {results['threads']} thread; wasm: onnxruntime-web 1.30 in Node (V8),",
        "1 thread. Errors: max-abs, its ratio to the reference's max |value|, and cosine over all features.",
        "",
        *_size_table(results),
        "",
        *_time_table(results, web),
        "",
        "## Patchify (448x448 -> 784 x 1536 floats)",
        "",
        *_patchify_table(results, web),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vision")
    parser.add_argument("--towers", default="0.8b,4b", help="bench/configs/qwen3_5-<name>-vision.json names")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-web", action="store_true", help="skip the Node (Pyodide, wasm) timings")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true", help="rewrite vision.md from vision.json")
    args = parser.parse_args(argv)
    if args.report_only:
        (args.out / "vision.md").write_text(report(json.loads((args.out / "vision.json").read_text())))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    towers = [t.strip() for t in args.towers.split(",") if t.strip()]
    inputs, prepared = prepared_inputs(WORK / "patchify")
    results: dict[str, Any] = {"threads": args.threads, "towers": {}}
    results["patchify"] = measure_patchify(prepared, max(args.repeats, 5), args.threads)
    for tower in towers:
        results["towers"][tower] = measure_tower(tower, inputs, args.repeats, args.threads)
    if not args.no_web:
        results["web"] = measure_web(prepared, inputs, towers, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vision.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "vision.md").write_text(report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
