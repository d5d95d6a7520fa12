"""How `make fidelity` scores one path: per-position NLL and argmax, perplexity, top-1 agreement, targets.

Shared by the native rows (bench.fidelity), the browser rows (bench.fidelity_browser) and the
recipe choice (bench.fidelity_recipes).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qwen35web.export.formats import FORMATS
from qwen35web.export.logit_stats import log_softmax

# Targets from the issue: fp32 paths vs PyTorch, quantized (q4, q4f16, q8) vs PyTorch fp32.
FP32_RELATIVE_PPL = 1e-5
QUANTIZED_PPL_INCREASE = 0.02
QUANTIZED_TOP1 = 0.95
QUANTIZED = tuple(name for name, weight_format in FORMATS.items() if weight_format.quantize is not None)


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
    dtype: str | None  # the bundle's weight format, from its manifest
    subset: str  # "held-out" (all positions) or "first-N" (browser prefix subset)
    tokens: int
    perplexity: float
    reference_perplexity: float  # PyTorch fp32 on the same positions
    relative_perplexity_change: float  # (ppl - reference) / reference
    top1_agreement: float  # vs PyTorch fp32's argmax on the same positions
    seconds: float | None = None
    error: str | None = None
    native_perplexity: float | None = None  # browser rows: the same bundle in native onnxruntime
    recipe: dict | None = None  # the bundle's manifest "quantization" entry
    earlier: bool = False  # carried over from the previous results, not re-run (`--no-browser`)


def bundle_format(bundle: Path) -> tuple[str, dict[str, Any] | None]:
    """The weight format a bundle was exported in and its recipe, as its manifest records them."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    return manifest["dtype"], manifest.get("quantization")


def predictions_from_logits(logits: np.ndarray, targets: np.ndarray) -> Predictions:
    """logits [N, V] (any float dtype), targets [N]; NLL in float64 so every path is scored alike."""
    log_probs = log_softmax(logits)  # [N, V]
    return Predictions(-log_probs[np.arange(len(targets)), targets], log_probs.argmax(axis=-1))


def concat(parts: list[Predictions]) -> Predictions:
    return Predictions(np.concatenate([p.nll for p in parts]), np.concatenate([p.argmax for p in parts]))


def perplexity(nll: np.ndarray) -> float:
    return math.exp(float(nll.mean()))


def score(
    path: str, runtime: str, bundle: str | None, dtype: str | None, got: Predictions, reference: Predictions
) -> Score:
    """`got` covers the first len(got.nll) positions of `reference`."""
    count = len(got.nll)
    ref_nll, ref_argmax = reference.nll[:count], reference.argmax[:count]
    ppl, ref_ppl = perplexity(got.nll), perplexity(ref_nll)
    subset = "held-out" if count == len(reference.nll) else f"first-{count}"
    return Score(
        path=path,
        runtime=runtime,
        bundle=bundle,
        dtype=dtype,
        subset=subset,
        tokens=count,
        perplexity=ppl,
        reference_perplexity=ref_ppl,
        relative_perplexity_change=(ppl - ref_ppl) / ref_ppl,
        top1_agreement=float((got.argmax == ref_argmax).mean()),
    )


def failed(path: str, runtime: str, bundle: str | None, dtype: str | None, error: str) -> Score:
    nan = float("nan")
    return Score(path, runtime, bundle, dtype, "-", 0, nan, nan, nan, nan, error=error)


def meets_quantized_targets(entry: Score) -> bool:
    return (
        not entry.error
        and entry.relative_perplexity_change <= QUANTIZED_PPL_INCREASE
        and entry.top1_agreement >= QUANTIZED_TOP1
    )


def verdict(entry: Score) -> str:
    """The issue's target for this path, and whether it holds: fp32 paths and quantized ones have one."""
    if entry.error:
        return "error"
    if entry.runtime == "pytorch":
        return "reference"
    if entry.dtype == "fp32":
        held = abs(entry.relative_perplexity_change) <= FP32_RELATIVE_PPL
        return f"{'pass' if held else 'FAIL'} (abs Δppl ≤ 1e-5)"
    if entry.dtype in QUANTIZED:
        ppl_held = entry.relative_perplexity_change <= QUANTIZED_PPL_INCREASE
        top1_held = entry.top1_agreement >= QUANTIZED_TOP1
        return (
            f"{'pass' if ppl_held and top1_held else 'FAIL'} "
            f"(Δppl ≤ +2 %: {'yes' if ppl_held else 'no'}; top-1 ≥ 95 %: {'yes' if top1_held else 'no'})"
        )
    return "no target"
