"""Presence and frequency penalties: the sampler graph against numpy over the full vocabulary, the
generation loop against a step-by-step reference, and bundles whose sampler predates them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from qwen35web.export.sampler_graph import sampler_model
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.penalties import ReplyTokenCounts
from qwen35web.runtime.sampling import SamplingParams
from tests.old_bundles import copy_with_old_sampler
from tests.run_async import run_async

REAL_VOCAB = 248_320
PROMPT_IDS = [17, 250, 3, 99, 412, 64, 64, 7, 311, 150, 42, 8]


def _openai_reference(logits: np.ndarray, reply: list[int], presence: float, frequency: float) -> np.ndarray:
    """logit[j] -= count[j] * frequency + (count[j] > 0) * presence, counts over the reply (float32)."""
    count = np.bincount(np.asarray(reply, dtype=np.int64), minlength=logits.shape[-1]).astype(np.float32)
    penalty = count * np.float32(frequency) + (count > 0).astype(np.float32) * np.float32(presence)
    return (logits - penalty).astype(np.float32)


def _run_sampler(session, logits, counts: ReplyTokenCounts, temperature: float, k: int):
    ids, amounts = counts.biases()
    feeds = {
        "logits": logits[None, None, :],
        "penalty_ids": np.zeros((1, 1), np.int64),
        "penalty": np.ones(1, np.float32),
        "bias_ids": np.asarray([ids], np.int64),
        "bias": np.asarray([amounts], np.float32),
        "temperature": np.asarray([temperature], np.float32),
        "k": np.asarray([k], np.int64),
    }
    top_logits, top_ids, log_z = session.run(None, feeds)
    return top_logits[0], top_ids[0], float(log_z[0, 0])


@pytest.mark.parametrize(("presence", "frequency"), [(2.0, 0.0), (0.0, 1.3), (1.5, 0.5), (-1.0, -0.25)])
def test_the_sampler_applies_openai_penalties_exactly_over_the_whole_vocabulary(presence, frequency):
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=REAL_VOCAB) * 4).astype(np.float32)
    # The reply repeats the most likely tokens, so the penalties reorder the top of the distribution.
    favourites = np.argsort(-logits)[:30]
    reply = [int(t) for t in rng.choice(favourites, size=120)] + [
        int(t) for t in rng.integers(0, REAL_VOCAB, 40)
    ]
    counts = ReplyTokenCounts(presence, frequency)
    counts.add(reply)
    session = ort.InferenceSession(sampler_model().SerializeToString(), providers=["CPUExecutionProvider"])
    temperature, k = 0.7, 64
    top_logits, top_ids, log_z = _run_sampler(session, logits, counts, temperature, k)

    scaled = _openai_reference(logits, reply, presence, frequency) / np.float32(temperature)
    order = np.argsort(-scaled, kind="stable")[:k]
    peak = scaled.astype(np.float64).max()
    expected_log_z = peak + np.log(np.exp(scaled.astype(np.float64) - peak).sum())
    assert top_ids.tolist() == order.tolist()
    assert np.abs(top_logits - scaled[order]).max() <= 1e-6  # measured 0 (same float32 operations)
    assert abs(log_z - expected_log_z) <= 1e-4
    assert order.tolist() != np.argsort(-logits, kind="stable")[:k].tolist(), "the penalties changed nothing"


def test_counts_are_distinct_ids_with_their_penalty():
    counts = ReplyTokenCounts(presence_penalty=0.5, frequency_penalty=0.25)
    counts.add([5, 9, 5, 5])
    assert dict(zip(*counts.biases(), strict=True)) == {5: 3 * 0.25 + 0.5, 9: 0.25 + 0.5}
    idle = ReplyTokenCounts(0.0, 0.0)
    idle.add([1, 2])
    assert idle.biases() == ([], [])


@pytest.mark.parametrize("value", [2.5, -2.01, float("nan")])
def test_penalties_outside_openai_range_are_refused(value):
    for name in ("presence_penalty", "frequency_penalty"):
        with pytest.raises(GenerationInputError, match=name):
            SamplingParams(**{name: value})


def test_greedy_generation_with_penalties_follows_a_full_vocabulary_reference(export_bundle):
    """Each chosen token is the argmax of the fresh logits after the reply so far, penalised in numpy."""
    bundle = export_bundle("text", "fused")
    params = SamplingParams(greedy=True, presence_penalty=1.5, frequency_penalty=0.7, max_new_tokens=20)

    async def go():
        runtime = await open_native(bundle)
        try:
            result = await runtime.generate(PROMPT_IDS, params)
            expected = []
            for i in range(len(result.tokens)):
                logits = np.asarray(await runtime.logits(PROMPT_IDS + result.tokens[:i]), np.float32)
                penalised = _openai_reference(logits, result.tokens[:i], 1.5, 0.7)
                expected.append(int(np.argmax(penalised)))
            plain = await runtime.generate(PROMPT_IDS, SamplingParams(greedy=True, max_new_tokens=20))
            return result.tokens, expected, plain.tokens
        finally:
            await runtime.close()

    tokens, expected, plain = run_async(go())
    assert tokens == expected
    assert tokens != plain
    assert len(set(tokens)) > len(set(plain))


def test_a_bundle_exported_before_the_penalties_still_generates(export_bundle, tmp_path: Path):
    old = copy_with_old_sampler(export_bundle("text", "fused"), tmp_path / "old")
    inputs = [i["name"] for i in json.loads((old / "manifest.json").read_text())["sampler"]["inputs"]]
    assert "bias_ids" not in inputs  # the premise

    async def go(params: SamplingParams):
        runtime = await open_native(old)
        try:
            return (await runtime.generate(PROMPT_IDS, params)).tokens
        finally:
            await runtime.close()

    new_tokens = run_async(
        _tokens(export_bundle("text", "fused"), SamplingParams(greedy=True, max_new_tokens=8))
    )
    assert run_async(go(SamplingParams(greedy=True, max_new_tokens=8))) == new_tokens
    with pytest.raises(GenerationInputError, match="predates presence/frequency penalties"):
        run_async(go(SamplingParams(presence_penalty=1.0, max_new_tokens=8)))


async def _tokens(bundle: Path, params: SamplingParams) -> list[int]:
    runtime = await open_native(bundle)
    try:
        return (await runtime.generate(PROMPT_IDS, params)).tokens
    finally:
        await runtime.close()
