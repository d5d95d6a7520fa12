"""`--validate`: the exported graph against PyTorch on fixed prompts, with a written report."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qwen35web.export.formats import Tolerance
from qwen35web.export.logit_stats import mean_kl
from qwen35web.export.ort_runner import GraphRunner
from qwen35web.runtime.graph_io import grid_positions, text_positions

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


def image_prompt_positions(length: int) -> np.ndarray:
    """MRoPE rows [3, T] of a prompt holding an image: text, a patch grid (h x 2h), text.

    The grid takes about half the prompt, so height and width rows differ from each other and
    from the temporal row; very short prompts keep the grid's first patches only.
    """
    before = length // 4
    height = max(1, math.isqrt(length // 4))
    width = 2 * height
    after = max(0, length - before - height * width)
    rows = [
        text_positions(0, before),
        grid_positions(before, height, width),
        text_positions(before + max(height, width), after),
    ]
    return np.concatenate([np.array(r, dtype=np.int64).reshape(3, -1) for r in rows], axis=1)[:, :length]


def _prefill(
    runner: GraphRunner, prompt: np.ndarray, positions: np.ndarray, chunk: int
) -> tuple[np.ndarray, list[int]]:
    """Logits rows of `prompt` fed in chunks with its MRoPE `positions` [3, T], and their indices.

    A graph exported with `--logits last` returns one row per step: it is compared at the
    positions it produced (the last of each chunk).
    """
    rows, indices = [], []
    states, past = runner.zero_states(1), 0
    for start in range(0, len(prompt), chunk):
        piece = prompt[start : start + chunk]
        logits, states = runner.step(
            piece[None], past, states, positions=positions[:, None, start : start + chunk]
        )
        rows.append(logits[0])
        indices += (
            list(range(start, start + len(piece)))
            if logits.shape[1] == len(piece)
            else [past + len(piece) - 1]
        )
        past += len(piece)
    return np.concatenate(rows), indices


def _onnx_side(model_path: Path, prompts: list[np.ndarray], eos_ids: tuple[int, ...]) -> list[dict[str, Any]]:
    """Everything onnxruntime computes for the prompts; the session is gone when this returns.

    Each prompt runs whole and in chunks, with text positions and with an image's distinct MRoPE rows.
    """
    runner = GraphRunner(model_path)
    outputs = []
    for prompt in prompts:
        runs: dict[str, tuple[np.ndarray, list[int]]] = {}
        for layout, positions in (
            ("text", np.array(text_positions(0, len(prompt)), dtype=np.int64)),
            ("image", image_prompt_positions(len(prompt))),
        ):
            runs[layout] = _prefill(runner, prompt, positions, len(prompt))
            runs[f"{layout}_chunked"] = _prefill(runner, prompt, positions, PREFILL_CHUNK)
        outputs.append({"runs": runs, "tokens": runner.greedy(prompt, GREEDY_TOKENS, suppress=eos_ids)})
    return outputs


def _reference_logits(reference: Any, prompt: np.ndarray, positions: np.ndarray | None) -> np.ndarray:
    """transformers' logits [T, V] of `prompt`, with MRoPE `positions` [3, T] when given."""
    ids = torch.from_numpy(prompt)[None]
    position_ids = None if positions is None else torch.from_numpy(positions)[:, None]
    with torch.no_grad():
        return reference(ids, position_ids=position_ids).logits[0].float().numpy()  # type: ignore[no-any-return]


def _against(reference: Any, prompts: list[np.ndarray], onnx_outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-prompt and worst-case differences between onnxruntime's outputs and `reference`'s."""
    cases: list[dict[str, Any]] = []
    for prompt, out in zip(prompts, onnx_outputs, strict=True):
        refs = {"text": _reference_logits(reference, prompt, None)}
        refs["image"] = _reference_logits(reference, prompt, image_prompt_positions(len(prompt)))
        with torch.no_grad():
            ref_tokens = reference_greedy(reference, prompt, GREEDY_TOKENS)
        case: dict[str, Any] = {"prompt_tokens": len(prompt)}
        for run, (logits, indices) in out["runs"].items():
            ref = refs[run.removesuffix("_chunked")][indices]
            case[f"{run}_max_abs"] = float(np.abs(logits - ref).max())
            if not run.endswith("_chunked"):
                case[f"{run}_kl"] = mean_kl(ref, logits)
        case["greedy_agreement"] = float(np.mean(np.array(out["tokens"]) == np.array(ref_tokens)))
        case["greedy_tokens"] = out["tokens"]
        case["reference_greedy_tokens"] = ref_tokens
        cases.append(case)
    worst = {
        "max_abs": max(v for c in cases for k, v in c.items() if k.endswith("_max_abs")),
        "kl": max(v for c in cases for k, v in c.items() if k.endswith("_kl")),
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
