"""`--validate`: the exported graph against PyTorch on fixed prompts, with a written report."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qwen35web.export.ort_runner import GraphRunner

log = logging.getLogger(__name__)

PROMPT_LENGTHS = (64, 17)
GREEDY_TOKENS = 16
PREFILL_CHUNK = 16  # the second pass prefills in chunks: exercises state hand-off


@dataclass(frozen=True)
class Tolerance:
    max_abs: float  # on logits
    kl: float  # mean KL(torch || onnx) over positions, nats
    greedy_agreement: float  # fraction of greedy tokens equal


TOLERANCES = {
    "fp32": Tolerance(max_abs=1e-4, kl=1e-6, greedy_agreement=1.0),
    "fp16": Tolerance(max_abs=5e-2, kl=1e-3, greedy_agreement=0.75),
    # Judged against PyTorch with the same int4-rounded weights; what remains is the kernel's int8
    # compute (accuracy level 4). Greedy flips on near-flat random logits are not a graph error.
    "q4": Tolerance(max_abs=1.0, kl=1e-2, greedy_agreement=0.0),
    "q4f16": Tolerance(max_abs=1.0, kl=1e-2, greedy_agreement=0.0),
    # PyTorch holds the same int8 weights and rounds every projection's input per tensor to uint8,
    # as the kernel does. It cannot follow the graph exactly: one activation a hair across a rounding
    # step flips a whole uint8 step, and on a deep random model that compounds (0.8B shape: KL 3e-3,
    # max-abs 0.4 whole-prompt; tiny: KL 4e-16). Chunked prefill rounds each chunk with its own scale,
    # so its logits differ from the one-pass reference by design (0.8B: max-abs 1.6).
    "q8": Tolerance(max_abs=2.5, kl=1e-2, greedy_agreement=0.0),
}


def _kl(ref_logits: np.ndarray, logits: np.ndarray) -> float:
    ref = torch.log_softmax(torch.from_numpy(ref_logits).double(), -1)
    out = torch.log_softmax(torch.from_numpy(logits).double(), -1)
    return float((ref.exp() * (ref - out)).sum(-1).mean())


def fixed_prompts(vocab: int, seed: int = 1234) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, size=n, dtype=np.int64) for n in PROMPT_LENGTHS]


def reference_greedy(reference: Any, prompt: np.ndarray, new_tokens: int) -> list[int]:
    """transformers' own greedy `generate()` of exactly `new_tokens` tokens (eos suppressed)."""
    ids = torch.from_numpy(prompt)[None]
    out = reference.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=0,
    )
    return out[0, ids.shape[1] :].tolist()


def _rows(piece: np.ndarray, start: int, length: int) -> tuple[np.ndarray, list[int]]:
    """A step's logits [T or 1, V] and the prompt positions they belong to (all, or the last only)."""
    positions = list(range(start, start + length)) if piece.shape[0] == length else [start + length - 1]
    return piece, positions


def _onnx_side(model_path: Path, prompts: list[np.ndarray], eos_ids: tuple[int, ...]) -> list[dict[str, Any]]:
    """Everything onnxruntime computes for the prompts; the session is gone when this returns.

    A graph exported with `--logits last` returns one row per step: it is compared at the
    positions it produced (the last of the prompt, the last of each chunk).
    """
    runner = GraphRunner(model_path)
    outputs = []
    for prompt in prompts:
        logits, _ = runner.step(prompt[None], 0, runner.zero_states(1))
        whole, positions = _rows(logits[0], 0, len(prompt))
        chunked, chunked_positions = [], []
        states, past = runner.zero_states(1), 0
        for start in range(0, len(prompt), PREFILL_CHUNK):
            piece = prompt[start : start + PREFILL_CHUNK]
            step_logits, states = runner.step(piece[None], past, states)
            rows, rows_positions = _rows(step_logits[0], start, len(piece))
            chunked.append(rows)
            chunked_positions += rows_positions
            past += len(piece)
        outputs.append(
            {
                "logits": whole,
                "positions": positions,
                "chunked": np.concatenate(chunked),
                "chunked_positions": chunked_positions,
                "tokens": runner.greedy(prompt, GREEDY_TOKENS, suppress=eos_ids),
            }
        )
    return outputs


def _against(reference: Any, prompts: list[np.ndarray], onnx_outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-prompt and worst-case differences between onnxruntime's outputs and `reference`'s."""
    cases: list[dict[str, Any]] = []
    for prompt, out in zip(prompts, onnx_outputs, strict=True):
        with torch.no_grad():
            ref = reference(torch.from_numpy(prompt)[None]).logits[0].float().numpy()  # [T, V]
            ref_tokens = reference_greedy(reference, prompt, GREEDY_TOKENS)
        cases.append(
            {
                "prompt_tokens": len(prompt),
                "max_abs": float(np.abs(out["logits"] - ref[out["positions"]]).max()),
                "chunked_max_abs": float(np.abs(out["chunked"] - ref[out["chunked_positions"]]).max()),
                "kl": _kl(ref[out["positions"]], out["logits"]),
                "greedy_agreement": float(np.mean(np.array(out["tokens"]) == np.array(ref_tokens))),
                "greedy_tokens": out["tokens"],
                "reference_greedy_tokens": ref_tokens,
            }
        )
    worst = {
        "max_abs": max(max(c["max_abs"], c["chunked_max_abs"]) for c in cases),
        "kl": max(c["kl"] for c in cases),
        "greedy_agreement": min(c["greedy_agreement"] for c in cases),
    }
    return {"worst": worst, "cases": cases}


def compare(
    model_path: Path,
    load_reference: Callable[[], Any],
    vocab: int,
    dtype: str,
    round_weights: Callable[[Any], None] | None = None,
    eos_ids: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Prefill logits, chunked-prefill logits and greedy tokens, onnxruntime vs PyTorch.

    The two sides run one after the other so that only one copy of the weights is in memory.
    For quantized graphs (`round_weights` given) the error against the float model is reported
    as `quantization_error`, and the graph is judged against PyTorch holding the same rounded
    weights, so the check still catches a wrong graph.
    """
    tolerance = TOLERANCES[dtype]
    prompts = fixed_prompts(vocab)
    # transformers' min_new_tokens keeps eos out of the reference's tokens: do the same here.
    onnx_outputs = _onnx_side(model_path, prompts, eos_ids)
    reference = load_reference()
    extra: dict[str, Any] = {}
    if round_weights is not None:
        extra["quantization_error"] = _against(reference, prompts, onnx_outputs)
        round_weights(reference)
    result = _against(reference, prompts, onnx_outputs)
    worst, cases = result["worst"], result["cases"]
    passed = (
        worst["max_abs"] <= tolerance.max_abs
        and worst["kl"] <= tolerance.kl
        and worst["greedy_agreement"] >= tolerance.greedy_agreement
    )
    log.info(
        "validation: max_abs %.3g, kl %.3g, greedy %.2f -> %s",
        worst["max_abs"],
        worst["kl"],
        worst["greedy_agreement"],
        "pass" if passed else "FAIL",
    )
    return {
        "passed": passed,
        "dtype": dtype,
        "tolerance": asdict(tolerance),
        "worst": worst,
        "cases": cases,
        **extra,
    }
