"""End to end: exported graphs (both layouts, both --ops) against transformers, fp32, text and MRoPE rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qwen35web.export.ort_runner import GraphRunner
from qwen35web.export.validate import image_prompt_positions, reference_greedy
from qwen35web.runtime.graph_io import text_positions
from tests.checkpoints import TINY_TEXT_CONFIG

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


@pytest.fixture(scope="module")
def tiny_vl_reference(tiny_reference):
    """transformers' Qwen3_5ForConditionalGeneration with the tiny text weights (a stand-in vision tower)."""
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    text = {k: v for k, v in TINY_TEXT_CONFIG.items() if k not in ("architectures", "model_type")}
    vision = {"depth": 1, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32, "out_hidden_size": 64}
    model = Qwen3_5ForConditionalGeneration(
        Qwen3_5Config(text_config=text, vision_config=vision, tie_word_embeddings=True)
    ).eval()
    weights = {
        k.removeprefix("model."): v for k, v in tiny_reference.state_dict().items() if k.startswith("model.")
    }
    model.model.language_model.load_state_dict(weights, strict=True)
    model.lm_head.weight = model.model.language_model.embed_tokens.weight
    return model


def _image_prompt(length: int, decode: int) -> tuple[np.ndarray, np.ndarray]:
    """An image's distinct MRoPE rows for a prompt [3, T], then text decode positions [3, decode]."""
    prompt = image_prompt_positions(length)
    resume = int(prompt.max()) + 1  # text after the image continues one past its largest position
    return prompt, np.array(text_positions(resume, decode), dtype=np.int64)


@pytest.mark.parametrize(("layout", "ops"), CASES, ids=IDS)
def test_distinct_mrope_rows_prefill_and_decode_match_transformers(
    export_bundle, tiny_reference, tiny_vl_reference, layout, ops
):
    """position_ids [3, 1, T] whose rows differ (an image's grid) give transformers' logits."""
    reference = tiny_reference if layout == "text" else tiny_vl_reference
    runner = GraphRunner(export_bundle(layout, ops) / "model.onnx")
    ids = _prompt(48)
    prompt_positions, decode_positions = _image_prompt(40, 8)
    positions = np.concatenate([prompt_positions, decode_positions], axis=1)  # [3, 48]
    assert len({tuple(row) for row in prompt_positions}) == 3, "the three rows must differ"
    with torch.no_grad():
        ref = (
            reference(
                input_ids=torch.from_numpy(ids)[None], position_ids=torch.from_numpy(positions)[:, None]
            )
            .logits[0]
            .numpy()
        )
    # The rows matter: with text positions the logits are measurably different.
    assert np.abs(ref - _reference_logits(tiny_reference, ids)).max() > 1e-3
    logits, states = runner.step(
        ids[None, :40], 0, runner.zero_states(1), positions=prompt_positions[:, None]
    )
    np.testing.assert_allclose(logits[0], ref[:40], rtol=0, atol=TOL)
    for i in range(8):
        step_positions = positions[:, None, 40 + i : 41 + i]
        logits, states = runner.step(ids[None, 40 + i : 41 + i], 40 + i, states, positions=step_positions)
        np.testing.assert_allclose(logits[0, 0], ref[40 + i], rtol=0, atol=TOL, err_msg=f"decode step {i}")


@pytest.mark.parametrize("ops", ["fused", "portable"])
def test_distinct_mrope_rows_in_chunks_and_batch_rows(export_bundle, tiny_reference, ops):
    """Chunk boundaries inside the image, and two batch rows with different rows, stay exact."""
    runner = GraphRunner(export_bundle("text", ops) / "model.onnx")
    ids = _prompt(40)
    first = image_prompt_positions(40)
    second = np.stack([np.arange(40), (np.arange(40) * 7) % 13, 50 - np.arange(40)])  # any ints
    refs = []
    with torch.no_grad():
        for rows in (first, second):
            position_ids = torch.from_numpy(rows)[:, None]
            refs.append(
                tiny_reference(torch.from_numpy(ids)[None], position_ids=position_ids).logits[0].numpy()
            )
    a, states = runner.step(ids[None, :13], 0, runner.zero_states(1), positions=first[:, None, :13])
    b, _ = runner.step(ids[None, 13:], 13, states, positions=first[:, None, 13:])
    np.testing.assert_allclose(np.concatenate([a[0], b[0]]), refs[0], rtol=0, atol=TOL)
    both = np.stack([first, second], axis=1)  # [3, 2, T]
    logits, _ = runner.step(np.stack([ids, ids]), 0, runner.zero_states(2), positions=both)
    np.testing.assert_allclose(logits, np.stack(refs), rtol=0, atol=TOL)
