"""`make fidelity`: does the trained demo model survive export? Held-out perplexity and top-1 agreement.

  python -m bench fidelity [--no-browser] [--no-builder] [--no-decode]
      [--browser-positions 256] [--webgpu-positions 32]      (or python -m bench.fidelity ...)

Scores models/tiny-qwen35 on its held-out split (the model card's stream, windows of 256) with PyTorch
fp32 and with each exported bundle under native onnxruntime: the formats with their default recipes
(real exports), every recipe candidate (bench.fidelity_recipes; quantized from the float export of
its trace dtype, bench.fidelity_derive) and the onnxruntime-genai builder's int4 recipes
(bench.fidelity_builder), from which each quantized format's per-size default is chosen; the
native decode time of the chosen q4 recipe, the previous one and the builder's on a 0.8B-shaped
random checkpoint (bench.fidelity_decode); then, on a prefix subset of the first window (the page's
`app.logits` returns only the last position), in Chromium on wasm and on WebGPU. Top-1 agreement is
the share of positions whose argmax equals PyTorch fp32's. Writes bench/results/fidelity.{json,md}.
Bundles, the PyTorch reference and each bundle's predictions are kept under build/fidelity/ and
reused while the checkpoint, the stream and the graph are unchanged (a retrained model redoes all).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import Qwen3_5ForCausalLM

from bench.fidelity_browser import browser_scores
from bench.fidelity_builder import builder_scores
from bench.fidelity_decode import decode_times
from bench.fidelity_decode import markdown as decode_markdown
from bench.fidelity_derive import base_bundle_name, derive_bundle
from bench.fidelity_recipes import CANDIDATES, Candidate, choose_defaults, size_specs, unmeasurable
from bench.fidelity_recipes import markdown as recipes_markdown
from bench.fidelity_scores import (
    Predictions,
    Score,
    bundle_format,
    concat,
    failed,
    predictions_from_logits,
    score,
    verdict,
)
from devtools.train_tiny.batches import evaluation_batches, token_stream
from devtools.train_tiny.corpus import build_corpus
from qwen35web.export.config import read_config_json, spec_from_config
from qwen35web.export.formats import choose
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


@dataclass(frozen=True)
class BundleSpec:
    """One bundle to export; a knob left None takes the registry's default (formats.py)."""

    name: str
    ops: str = "fused"
    dtype: str = "fp32"
    block_size: int | None = None
    accuracy_level: int | None = None
    embedding: str | None = None
    derived: bool = False  # made from the float bundle of its trace dtype (bench.fidelity_derive)


def candidate_bundle(candidate: Candidate) -> BundleSpec:
    return BundleSpec(candidate.name, dtype=candidate.dtype, derived=True, **candidate.recipe.knobs())


# The formats as a plain `--dtype` export gives them (quantized ones with their default recipe).
BUNDLES = [
    BundleSpec("fp32-fused"),
    BundleSpec("fp32-portable", ops="portable"),
    BundleSpec("fp16-fused", dtype="fp16"),
    BundleSpec("q4-fused", dtype="q4"),
    BundleSpec("q4f16-fused", dtype="q4f16"),
    BundleSpec("q8-fused", dtype="q8"),
]


def held_out_stream(tokenizer: Tokenizer) -> torch.Tensor:
    """[N] int64: the card's held-out stream (separator, doc, separator, ...)."""
    corpus = build_corpus()
    return token_stream(tokenizer, corpus.held_out, SEPARATOR_ID)


@torch.no_grad()
def pytorch_predictions(stream: torch.Tensor) -> Predictions:
    model = Qwen3_5ForCausalLM.from_pretrained(CHECKPOINT, dtype=torch.float32).eval()
    parts = []
    for inputs, targets in evaluation_batches(stream, CONTEXT, BATCH):
        logits = model(input_ids=inputs, use_cache=False).logits  # [b, t, V]
        parts.append(predictions_from_logits(logits.flatten(0, 1).numpy(), targets.flatten().numpy()))
    return concat(parts)


def _reference_key(stream: torch.Tensor) -> str:
    """What the PyTorch reference depends on: the weights, the stream, the window, the versions."""
    digest = hashlib.sha256((CHECKPOINT / "model.safetensors").read_bytes())
    digest.update(stream.numpy().tobytes())
    versions = _versions()
    digest.update(
        json.dumps([CONTEXT, {k: versions[k] for k in ("torch", "transformers", "onnxruntime")}]).encode()
    )
    return digest.hexdigest()


def reference_predictions(stream: torch.Tensor) -> tuple[Predictions, float]:
    """PyTorch fp32's predictions and the seconds they took, kept under build/fidelity/ for the
    same weights and stream (a retrained model gets a new reference); the seconds are those of the
    run that computed them."""
    cache = WORK / "pytorch-reference.npz"
    key = _reference_key(stream)
    if cache.exists():
        kept = np.load(cache)
        if str(kept["key"]) == key:
            return Predictions(kept["nll"], kept["argmax"]), float(kept["seconds"])
    started = time.monotonic()
    reference = pytorch_predictions(stream)
    seconds = time.monotonic() - started
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=key, nll=reference.nll, argmax=reference.argmax, seconds=seconds)
    return reference, seconds


def onnx_predictions(model_path: Path, stream: torch.Tensor) -> Predictions:
    runner = GraphRunner(model_path)
    parts = []
    for inputs, targets in evaluation_batches(stream, CONTEXT, ONNX_BATCH):
        ids = inputs.numpy()  # [b, t]
        logits, _ = runner.step(ids, 0, runner.zero_states(ids.shape[0]))  # [b, t, V]
        parts.append(predictions_from_logits(logits.reshape(-1, logits.shape[-1]), targets.flatten().numpy()))
    return concat(parts)


def _newer(path: Path, than: Path) -> bool:
    return path.exists() and path.stat().st_mtime_ns >= than.stat().st_mtime_ns


def _is_current(out: Path, spec: BundleSpec) -> bool:
    """A bundle left by an earlier run, in the format and recipe this spec resolves to today,
    exported after the checkpoint was last written (and a derived one after its float bundle)."""
    if not (out / "manifest.json").exists():
        return False
    if not _newer(out / "model.onnx", CHECKPOINT / "model.safetensors"):
        return False
    if spec.derived and not _newer(
        out / "model.onnx", WORK / "bundles" / base_bundle_name(spec.dtype) / "model.onnx"
    ):
        return False
    dtype, recorded = bundle_format(out)
    knobs = {
        "block_size": spec.block_size,
        "accuracy_level": spec.accuracy_level,
        "embedding": spec.embedding,
    }
    wanted = choose(spec.dtype, spec_from_config(read_config_json(CHECKPOINT)), **knobs).recipe.knobs()
    return dtype == spec.dtype and all((recorded or {}).get(k) == v for k, v in wanted.items())


def _knobs(spec: BundleSpec) -> dict:
    return {"block_size": spec.block_size, "accuracy_level": spec.accuracy_level, "embedding": spec.embedding}


def ensure_bundle(spec: BundleSpec) -> Path:
    out = WORK / "bundles" / spec.name
    if spec.derived:
        base = ensure_bundle(next(b for b in BUNDLES if b.name == base_bundle_name(spec.dtype)))
        if not _is_current(out, spec):
            log.info("deriving %s from %s", spec.name, base.name)
            derive_bundle(base, out, CHECKPOINT, spec.dtype, _knobs(spec))
        return out
    if not _is_current(out, spec):
        log.info("exporting %s", spec.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        options = ExportOptions(CHECKPOINT, out, ops=spec.ops, dtype=spec.dtype, force=True, **_knobs(spec))
        run_export(options)
    return out


def _kept_predictions(
    bundle: Path, stream: torch.Tensor, reference: Predictions
) -> tuple[Predictions, float]:
    """The bundle's predictions and the seconds they took, kept beside its graph for the same
    reference (the same weights and stream) and the same graph file."""
    cache = bundle / "fidelity-predictions.npz"
    digest = hashlib.sha256(reference.nll.tobytes())
    digest.update(str((bundle / "model.onnx").stat().st_mtime_ns).encode())
    key = digest.hexdigest()
    if cache.exists():
        kept = np.load(cache)
        if str(kept["key"]) == key:
            return Predictions(kept["nll"], kept["argmax"]), float(kept["seconds"])
    started = time.monotonic()
    got = onnx_predictions(bundle / "model.onnx", stream)
    seconds = time.monotonic() - started
    np.savez(cache, key=key, nll=got.nll, argmax=got.argmax, seconds=seconds)
    return got, seconds


def native_scores(
    specs: list[BundleSpec], stream: torch.Tensor, reference: Predictions, kept: dict[str, Predictions]
) -> list[Score]:
    """One row per bundle; each bundle's predictions go into `kept` for the browser rows to compare with."""
    scores = []
    for spec in specs:
        path = f"onnxruntime {spec.name}"
        try:
            bundle = ensure_bundle(spec)
            dtype, recipe = bundle_format(bundle)
            got, seconds = _kept_predictions(bundle, stream, reference)
            kept[spec.name] = got
            entry = score(path, "onnxruntime", spec.name, dtype, got, reference)
            entry.seconds = seconds
            entry.recipe = recipe
        except Exception as err:  # a bundle that fails to export or run is a row of the table, not a crash
            log.exception("%s failed", path)
            entry = failed(path, "onnxruntime", spec.name, spec.dtype, f"{type(err).__name__}: {err}")
        log.info("%s: ppl %.6f, top-1 %.4f", path, entry.perplexity, entry.top1_agreement)
        scores.append(entry)
    return scores


def _cell(value: float, fmt: str) -> str:
    return "—" if math.isnan(value) else format(value, fmt)


def markdown(scores: list[Score], meta: dict, recipes: str) -> str:
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
        mark = " (earlier run)" if s.earlier else ""
        lines.append(
            f"| {s.path}{mark} | {s.subset} ({s.tokens}) | {_cell(s.perplexity, '.6f')} "
            f"| {_cell(s.reference_perplexity, '.6f')} | {_cell(s.relative_perplexity_change, '+.2e')} "
            f"| {_cell(100 * s.top1_agreement, '.2f')} % "
            f"| {'—' if s.native_perplexity is None else format(s.native_perplexity, '.6f')} "
            f"| {seconds} | {target} |"
        )
    if any(s.earlier for s in scores):
        lines += [
            "",
            "Rows marked (earlier run) were not re-run (`--no-browser`): they are the previous results' "
            "browser rows, measured on the bundles of that time (its q4 default, and q8 before its 7-bit "
            "weights); rerun without `--no-browser` to make them current.",
        ]
    errors = [f"- {s.path}: `{s.error}`" for s in scores if s.error]
    if errors:
        lines += ["", "## Errors", "", *errors]
    lines += ["", recipes, f"Versions: {json.dumps(meta['versions'])}", ""]
    return "\n".join(lines)


def earlier_browser_rows() -> list[Score]:
    """The previous results' wasm and WebGPU rows, marked as not re-run (`--no-browser`)."""
    path = RESULTS / "fidelity.json"
    if not path.exists():
        return []
    names = {f.name for f in fields(Score)}
    rows = [r for r in json.loads(path.read_text())["scores"] if r["runtime"] in ("wasm", "webgpu")]
    kept = [Score(**{k: v for k, v in row.items() if k in names}) for row in rows]
    for entry in kept:
        entry.earlier = True
    return kept


def write_results(scores: list[Score], meta: dict, recipes: dict, recipes_text: str) -> str:
    """Writes fidelity.json (rows, and the chosen recipe per format and size) and fidelity.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = [{**asdict(s), "verdict": verdict(s)} for s in scores]
    document = {"meta": meta, "scores": rows, "recipes": recipes}
    (RESULTS / "fidelity.json").write_text(json.dumps(document, indent=2) + "\n")
    text = markdown(scores, meta, recipes_text)
    (RESULTS / "fidelity.md").write_text(text)
    return text


def _versions() -> dict[str, str]:
    from importlib import metadata

    names = ("torch", "transformers", "onnxruntime", "onnxruntime-genai")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity", description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="native onnxruntime and PyTorch only")
    parser.add_argument("--no-decode", action="store_true", help="leave out the 0.8B decode timings")
    parser.add_argument("--no-builder", action="store_true", help="leave out the onnxruntime-genai rows")
    parser.add_argument("--browser-positions", type=int, default=256, help="wasm: prefixes of window 0")
    parser.add_argument("--webgpu-positions", type=int, default=32, help="WebGPU (SwiftShader): fewer")
    return parser.parse_args(argv)


# Timed beside the builder besides the chosen 0.8B default: the previous default (block 16, int8
# table and head) and the recipe nearest the builder's (int4 blocks of 32, table and head included).
TIMED_ALSO = ("q4-b16-int8", "q4-b32-int4")


def _timed_recipes(recipes: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    names = [recipes["q4"]["0.8B"].get("candidate"), *TIMED_ALSO]
    by_name = {c.name: c for c in CANDIDATES}
    return {n: ("q4", by_name[n].recipe.knobs()) for n in dict.fromkeys(names) if n in by_name}


def _all_meet(by_size: dict[str, dict]) -> bool:
    return all(entry.get("meets_targets", True) for entry in by_size.values())


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    tokenizer = Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json"))
    stream = held_out_stream(tokenizer)
    reference, reference_seconds = reference_predictions(stream)
    scores = [score("PyTorch fp32", "pytorch", None, None, reference, reference)]
    scores[0].seconds = reference_seconds
    native: dict[str, Predictions] = {}
    tiny = spec_from_config(read_config_json(CHECKPOINT))
    skipped = {c.name: reason for c in CANDIDATES if (reason := unmeasurable(c, tiny))}
    candidates = [candidate_bundle(c) for c in CANDIDATES if c.name not in skipped]
    scores += native_scores([*BUNDLES, *candidates], stream, reference, native)
    windows = list(evaluation_batches(stream, CONTEXT, ONNX_BATCH))
    builder = [] if args.no_builder else builder_scores(CHECKPOINT, WORK / "builder", windows, reference)
    scores += builder
    specs = size_specs()
    by_bundle = {s.bundle: s for s in scores if s.runtime == "onnxruntime" and s.bundle}
    recipes = choose_defaults(by_bundle, specs, {s.bundle: s for s in builder if s.bundle})
    recipes_text = recipes_markdown(by_bundle, recipes, specs, skipped)
    decode = None if args.no_decode else decode_times(_timed_recipes(recipes))
    if decode is not None:
        recipes_text += "\n" + decode_markdown(decode)
    if not args.no_browser:
        bundles = {spec.name: ensure_bundle(spec) for spec in [*BUNDLES, *candidates]}
        scores += browser_scores(
            bundles, stream, reference, native, (args.browser_positions, args.webgpu_positions)
        )
    else:
        scores += earlier_browser_rows()
    meta = {
        "held_out_tokens": len(reference.nll),
        "context": CONTEXT,
        "versions": _versions(),
        "decode": decode,
    }
    print(write_results(scores, meta, recipes, recipes_text))
    # Candidates and the builder's rows may miss, in any runtime (that is what they are measured
    # for); the defaults may not, except q4/q4f16 where the builder's rule chose a default that
    # misses the targets (their rows still say so).
    below_targets = {f"{dtype}-fused" for dtype, by_size in recipes.items() if not _all_meet(by_size)}
    measured_only = {c.name for c in candidates} | {s.bundle for s in builder} | below_targets
    judged = [s for s in scores if s.bundle not in measured_only and not s.earlier]
    return 1 if any("FAIL" in verdict(s) or s.error for s in judged) else 0


if __name__ == "__main__":
    sys.exit(main())
