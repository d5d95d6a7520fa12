"""End to end: exported graphs (both layouts, both --ops) against transformers, fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qwen35web.export.ort_runner import GraphRunner
from qwen35web.export.validate import reference_greedy

TOL = 1e-5
CASES = [(layout, ops) for layout in ("text", "vl") for ops in ("fused", "portable")]
IDS = [f"{layout}-{ops}" for layout, ops in CASES]


def _prompt(n: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 500, size=n, dtype=np.int64)


def _reference_logits(reference, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return reference(torch.from_numpy(ids)[None]).logits[0].numpy()  # [T, V]


@pytest.mark.parametrize(("layout", "ops"), CASES, ids=IDS)
def test_prefill_then_32_decode_steps(export_bundle, tiny_reference, layout, ops):
    runner = GraphRunner(export_bundle(layout, ops) / "model.onnx")
    prompt = _prompt(40)
    continuation = _prompt(32, seed=8)
    ref = _reference_logits(tiny_reference, np.concatenate([prompt, continuation]))
    logits, states = runner.step(prompt[None], 0, runner.zero_states(1))
    np.testing.assert_allclose(logits[0], ref[:40], rtol=0, atol=TOL)
    for i, token in enumerate(continuation):
        logits, states = runner.step(np.array([[token]]), 40 + i, states)
        np.testing.assert_allclose(logits[0, 0], ref[40 + i], rtol=0, atol=TOL, err_msg=f"decode step {i}")


@pytest.mark.parametrize(("layout", "ops"), CASES, ids=IDS)
def test_split_prompt_100_plus_30(export_bundle, tiny_reference, layout, ops):
    runner = GraphRunner(export_bundle(layout, ops) / "model.onnx")
    prompt = _prompt(130)
    ref = _reference_logits(tiny_reference, prompt)
    first, states = runner.step(prompt[None, :100], 0, runner.zero_states(1))
    second, _ = runner.step(prompt[None, 100:], 100, states)
    np.testing.assert_allclose(np.concatenate([first[0], second[0]]), ref, rtol=0, atol=TOL)


@pytest.mark.parametrize(("layout", "ops"), CASES, ids=IDS)
def test_greedy_32_tokens_match_generate(export_bundle, tiny_reference, layout, ops):
    runner = GraphRunner(export_bundle(layout, ops) / "model.onnx")
    prompt = _prompt(20, seed=3)
    eos = (2,)  # the tiny model's; transformers' min_new_tokens suppresses it
    assert runner.greedy(prompt, 32, suppress=eos) == reference_greedy(tiny_reference, prompt, 32)


def test_batch_of_two_with_left_padding(export_bundle, tiny_reference):
    """Batch rows are independent; a left-padded row gives the unpadded row's logits."""
    runner = GraphRunner(export_bundle("text", "fused") / "model.onnx")
    long, short = _prompt(12, seed=1), _prompt(9, seed=2)
    ids = np.stack([long, np.concatenate([np.zeros(3, np.int64), short])])
    mask = np.ones((2, 12), np.int64)
    mask[1, :3] = 0
    logits, _ = runner.step(ids, 0, runner.zero_states(2), mask=mask)
    np.testing.assert_allclose(logits[0], _reference_logits(tiny_reference, long), atol=TOL, rtol=0)
    # Rotary attention sees only position differences, so the shifted positions do not matter.
    np.testing.assert_allclose(logits[1, 3:], _reference_logits(tiny_reference, short), atol=TOL, rtol=0)
