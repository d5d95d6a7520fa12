"""`make fidelity`: does the trained demo model survive export? Held-out perplexity and top-1 agreement.

  python -m bench.fidelity [--no-browser] [--browser-positions 256] [--webgpu-positions 32]

Scores models/tiny-qwen35 on its held-out split (the model card's stream, windows of 256) with PyTorch
fp32 and with each exported bundle under native onnxruntime; then, on a prefix subset of the first
window (the page's `app.logits` returns only the last position), in Chromium on wasm and on WebGPU.
Top-1 agreement is the share of positions whose argmax equals PyTorch fp32's. Writes
bench/results/fidelity.{json,md}. Bundles are exported under build/fidelity/ (reused when present).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import Qwen3_5ForCausalLM

from devtools.train_tiny.batches import evaluation_batches, token_stream
from devtools.train_tiny.corpus import build_corpus
from qwen35web.export.ort_runner import GraphRunner
from qwen35web.export.pipeline import ExportOptions, run_export

log = logging.getLogger("bench.fidelity")

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "models" / "tiny-qwen35"
WORK = REPO / "build" / "fidelity"
RESULTS = REPO / "bench" / "results"
CONTEXT = 256  # the model card's evaluation window
BATCH = 8  # PyTorch reference windows per forward
# Exported graphs see one window per run, as the page does: q8's DynamicQuantizeMatMul quantizes its
# activations with one scale per tensor, so a batch of 8 windows shares a scale (measured: top-1
# 94.5 % at batch 8 against 96.0 % at batch 1); no other path depends on the batch.
ONNX_BATCH = 1
SEPARATOR_ID = 0  # <|endoftext|>: precedes every held-out document in the card's stream

# Targets from the issue: fp32 paths vs PyTorch, quantized (q4, q8) vs the fp32 bundle.
FP32_RELATIVE_PPL = 1e-5
Q4_PPL_INCREASE = 0.02
Q4_TOP1 = 0.95


@dataclass(frozen=True)
class BundleSpec:
    name: str
    ops: str = "fused"
    dtype: str = "fp32"
    block_size: int = 32
    accuracy_level: int = 4
    keep_float_embedding: bool = False


BUNDLES = [
    BundleSpec("fp32-fused"),
    BundleSpec("fp32-portable", ops="portable"),
    BundleSpec("fp16-fused", dtype="fp16"),
    BundleSpec("q4-fused", dtype="q4"),
    BundleSpec("q8-fused", dtype="q8"),
    BundleSpec("q8-float-embedding", dtype="q8", keep_float_embedding=True),
]
# Tried only when the default q4 bundle misses a target.
Q4_ALTERNATIVES = [
    BundleSpec("q4-block16", dtype="q4", block_size=16),
    BundleSpec("q4-block64", dtype="q4", block_size=64),
    BundleSpec("q4-acc1", dtype="q4", accuracy_level=1),
    BundleSpec("q4-float-embedding", dtype="q4", keep_float_embedding=True),
    BundleSpec("q4-block16-float-embedding", dtype="q4", block_size=16, keep_float_embedding=True),
    BundleSpec(
        "q4-block16-float-embedding-acc1",
        dtype="q4",
        block_size=16,
        accuracy_level=1,
        keep_float_embedding=True,
    ),
]

# The alternative that meets the q4 targets natively: the browser table scores it next to the default.
Q4_BROWSER_ALTERNATIVE = Q4_ALTERNATIVES[4]


@dataclass
class Predictions:
    """Per-position results of one path over a token stream's positions."""

    nll: np.ndarray  # [N] float64, -log p(target)
    argmax: np.ndarray  # [N] int64


@dataclass
class Score:
    path: str  # e.g. "onnxruntime fp32-fused"
    runtime: str  # pytorch | onnxruntime | wasm | webgpu
    bundle: str | None
    subset: str  # "held-out" (all positions) or "first-N" (browser prefix subset)
    tokens: int
    perplexity: float
    reference_perplexity: float  # PyTorch fp32 on the same positions
    relative_perplexity_change: float  # (ppl - reference) / reference
    top1_agreement: float  # vs PyTorch fp32's argmax on the same positions
    seconds: float | None = None
    error: str | None = None
    native_perplexity: float | None = (
        None  # browser rows: the same bundle in native onnxruntime, same positions
    )


def held_out_stream(tokenizer: Tokenizer) -> torch.Tensor:
    """[N] int64: the card's held-out stream (separator, doc, separator, ...)."""
    corpus = build_corpus()
    return token_stream(tokenizer, corpus.held_out, SEPARATOR_ID)


def predictions_from_logits(logits: np.ndarray, targets: np.ndarray) -> Predictions:
    """logits [N, V] (any float dtype), targets [N]; NLL in float64 so every path is scored alike."""
    wide = logits.astype(np.float64)
    shifted = wide - wide.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=-1))  # [N]
    nll = log_norm - shifted[np.arange(len(targets)), targets]
    return Predictions(nll, wide.argmax(axis=-1))


def _concat(parts: list[Predictions]) -> Predictions:
    return Predictions(np.concatenate([p.nll for p in parts]), np.concatenate([p.argmax for p in parts]))


@torch.no_grad()
def pytorch_predictions(stream: torch.Tensor) -> Predictions:
    model = Qwen3_5ForCausalLM.from_pretrained(CHECKPOINT, dtype=torch.float32).eval()
    parts = []
    for inputs, targets in evaluation_batches(stream, CONTEXT, BATCH):
        logits = model(input_ids=inputs, use_cache=False).logits  # [b, t, V]
        parts.append(predictions_from_logits(logits.flatten(0, 1).numpy(), targets.flatten().numpy()))
    return _concat(parts)


def onnx_predictions(model_path: Path, stream: torch.Tensor) -> Predictions:
    runner = GraphRunner(model_path)
    parts = []
    for inputs, targets in evaluation_batches(stream, CONTEXT, ONNX_BATCH):
        ids = inputs.numpy()  # [b, t]
        logits, _ = runner.step(ids, 0, runner.zero_states(ids.shape[0]))  # [b, t, V]
        parts.append(predictions_from_logits(logits.reshape(-1, logits.shape[-1]), targets.flatten().numpy()))
    return _concat(parts)


def ensure_bundle(spec: BundleSpec) -> Path:
    out = WORK / "bundles" / spec.name
    if not (out / "manifest.json").exists():
        log.info("exporting %s", spec.name)
        options = ExportOptions(
            CHECKPOINT,
            out,
            ops=spec.ops,
            dtype=spec.dtype,
            force=True,
            block_size=spec.block_size,
            accuracy_level=spec.accuracy_level,
            quantize_embedding=not spec.keep_float_embedding,
        )
        run_export(options)
    return out


def perplexity(nll: np.ndarray) -> float:
    return math.exp(float(nll.mean()))


def score(path: str, runtime: str, bundle: str | None, got: Predictions, reference: Predictions) -> Score:
    """`got` covers the first len(got.nll) positions of `reference`."""
    count = len(got.nll)
    ref_nll, ref_argmax = reference.nll[:count], reference.argmax[:count]
    ppl, ref_ppl = perplexity(got.nll), perplexity(ref_nll)
    subset = "held-out" if count == len(reference.nll) else f"first-{count}"
    return Score(
        path=path,
        runtime=runtime,
        bundle=bundle,
        subset=subset,
        tokens=count,
        perplexity=ppl,
        reference_perplexity=ref_ppl,
        relative_perplexity_change=(ppl - ref_ppl) / ref_ppl,
        top1_agreement=float((got.argmax == ref_argmax).mean()),
    )


def failed(path: str, runtime: str, bundle: str | None, error: str) -> Score:
    nan = float("nan")
    return Score(path, runtime, bundle, "-", 0, nan, nan, nan, nan, error=error)


def verdict(entry: Score) -> str:
    """The issue's target for this path, and whether it holds: fp32 paths and q4 have one, fp16 none."""
    if entry.error:
        return "error"
    if entry.runtime == "pytorch":
        return "reference"
    dtype = (entry.bundle or "").split("-")[0]
    if dtype == "fp32":
        held = abs(entry.relative_perplexity_change) <= FP32_RELATIVE_PPL
        return f"{'pass' if held else 'FAIL'} (abs Δppl ≤ 1e-5)"
    if dtype in ("q4", "q8"):
        ppl_held = entry.relative_perplexity_change <= Q4_PPL_INCREASE
        top1_held = entry.top1_agreement >= Q4_TOP1
        return (
            f"{'pass' if ppl_held and top1_held else 'FAIL'} "
            f"(Δppl ≤ +2 %: {'yes' if ppl_held else 'no'}; top-1 ≥ 95 %: {'yes' if top1_held else 'no'})"
        )
    return "no target"


def q4_misses(scores: list[Score]) -> bool:
    return any(s.runtime == "onnxruntime" and s.bundle == "q4-fused" and "FAIL" in verdict(s) for s in scores)


def native_scores(
    specs: list[BundleSpec], stream: torch.Tensor, reference: Predictions, kept: dict[str, Predictions]
) -> list[Score]:
    """One row per bundle; each bundle's predictions go into `kept` for the browser rows to compare with."""
    scores = []
    for spec in specs:
        path = f"onnxruntime {spec.name}"
        try:
            model_path = ensure_bundle(spec) / "model.onnx"
            started = time.monotonic()
            got = kept[spec.name] = onnx_predictions(model_path, stream)
            entry = score(path, "onnxruntime", spec.name, got, reference)
            entry.seconds = time.monotonic() - started
        except Exception as err:  # a bundle that fails to export or run is a row of the table, not a crash
            log.exception("%s failed", path)
            entry = failed(path, "onnxruntime", spec.name, f"{type(err).__name__}: {err}")
        log.info("%s: ppl %.6f, top-1 %.4f", path, entry.perplexity, entry.top1_agreement)
        scores.append(entry)
    return scores


def _cell(value: float, fmt: str) -> str:
    return "—" if math.isnan(value) else format(value, fmt)


def markdown(scores: list[Score], meta: dict) -> str:
    lines = [
        "# Fidelity of the exported tiny-qwen35",
        "",
        f"Held-out split of models/tiny-qwen35 ({meta['held_out_tokens']} scored positions, windows of "
        f"{CONTEXT}); browser rows score prefixes of the first window (`app.logits` returns the last "
        "position only) and compare with PyTorch fp32 on the same positions. Top-1 agreement: share of "
        "positions whose argmax equals PyTorch fp32's. NLL is computed in float64 from each path's logits.",
        "",
        "| path | positions | perplexity | PyTorch ppl (same positions) | relative Δppl | top-1 agreement "
        "| native ppl (same bundle, positions) | seconds | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in scores:
        seconds = "—" if s.seconds is None else f"{s.seconds:.1f}"
        target = verdict(s) if not s.error else "error (below)"
        lines.append(
            f"| {s.path} | {s.subset} ({s.tokens}) | {_cell(s.perplexity, '.6f')} "
            f"| {_cell(s.reference_perplexity, '.6f')} | {_cell(s.relative_perplexity_change, '+.2e')} "
            f"| {_cell(100 * s.top1_agreement, '.2f')} % "
            f"| {'—' if s.native_perplexity is None else format(s.native_perplexity, '.6f')} "
            f"| {seconds} | {target} |"
        )
    errors = [f"- {s.path}: `{s.error}`" for s in scores if s.error]
    if errors:
        lines += ["", "## Errors", "", *errors]
    lines += ["", f"Versions: {json.dumps(meta['versions'])}", ""]
    return "\n".join(lines)


def write_results(scores: list[Score], meta: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = [{**asdict(s), "verdict": verdict(s)} for s in scores]
    (RESULTS / "fidelity.json").write_text(json.dumps({"meta": meta, "scores": rows}, indent=2) + "\n")
    (RESULTS / "fidelity.md").write_text(markdown(scores, meta))


def _versions() -> dict[str, str]:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("torch", "transformers", "onnxruntime")}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity", description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="native onnxruntime and PyTorch only")
    parser.add_argument("--browser-positions", type=int, default=256, help="wasm: prefixes of window 0")
    parser.add_argument("--webgpu-positions", type=int, default=32, help="WebGPU (SwiftShader): fewer")
    parser.add_argument("--all-q4", action="store_true", help="score the q4 alternatives even if q4 passes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    tokenizer = Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json"))
    stream = held_out_stream(tokenizer)
    started = time.monotonic()
    reference = pytorch_predictions(stream)
    scores = [score("PyTorch fp32", "pytorch", None, reference, reference)]
    scores[0].seconds = time.monotonic() - started
    native: dict[str, Predictions] = {}
    scores += native_scores(BUNDLES, stream, reference, native)
    if args.all_q4 or q4_misses(scores):
        scores += native_scores(Q4_ALTERNATIVES, stream, reference, native)
    if not args.no_browser:
        from bench.fidelity_browser import browser_scores

        bundles = {spec.name: ensure_bundle(spec) for spec in [*BUNDLES, Q4_BROWSER_ALTERNATIVE]}
        scores += browser_scores(
            bundles, stream, reference, native, (args.browser_positions, args.webgpu_positions)
        )
    meta = {"held_out_tokens": len(reference.nll), "context": CONTEXT, "versions": _versions()}
    write_results(scores, meta)
    print(markdown(scores, meta))
    return 1 if any("FAIL" in verdict(s) or s.error for s in scores) else 0


if __name__ == "__main__":
    sys.exit(main())
