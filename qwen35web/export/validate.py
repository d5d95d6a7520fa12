"""`--validate`: the exported graph against PyTorch on fixed prompts, with a written report."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qwen35web.export.formats import Tolerance
from qwen35web.export.logit_stats import mean_kl
from qwen35web.export.ort_runner import GraphRunner

log = logging.getLogger(__name__)

PROMPT_LENGTHS = (64, 17)
GREEDY_TOKENS = 16
PREFILL_CHUNK = 16  # the second pass prefills in chunks: exercises state hand-off


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
                "kl": mean_kl(ref[out["positions"]], out["logits"]),
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
    judged_as: tuple[str, Tolerance],
    round_weights: Callable[[Any], None] | None = None,
    eos_ids: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Prefill logits, chunked-prefill logits and greedy tokens, onnxruntime vs PyTorch.

    The two sides run one after the other so that only one copy of the weights is in memory.
    For quantized graphs (`round_weights` given) the error against the float model is reported
    as `quantization_error`, and the graph is judged against PyTorch holding the same rounded
    weights, so the check still catches a wrong graph. `judged_as` is the format's name and its
    tolerance (formats.FORMATS).
    """
    dtype, tolerance = judged_as
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
