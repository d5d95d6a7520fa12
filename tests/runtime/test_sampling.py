"""Sampling: settings validation, seeded reproducibility, and the distribution against numpy."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.sampling import MAX_CANDIDATES, SamplingParams, choose, without_tokens


def _candidates(logits: np.ndarray, params: SamplingParams) -> tuple[list[float], list[int], float]:
    """What the sampler graph returns, computed with numpy."""
    scaled = logits / params.effective_temperature
    order = np.argsort(-scaled, kind="stable")[: params.candidates]
    log_z = float(np.log(np.exp(scaled - scaled.max()).sum()) + scaled.max())
    return scaled[order].tolist(), order.tolist(), log_z


def _reference_distribution(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """transformers' warper order: temperature, top-k, top-p (smallest set reaching p), renormalise."""
    scaled = logits / params.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    keep = np.zeros_like(probs, dtype=bool)
    keep[order[: params.top_k or MAX_CANDIDATES]] = True
    probs = np.where(keep, probs, 0)
    if params.top_k:
        probs /= probs.sum()
    cumulative = np.cumsum(probs[order])
    cut = int(np.searchsorted(cumulative, params.top_p)) + 1
    final = np.zeros_like(probs)
    final[order[:cut]] = probs[order[:cut]]
    return final / final.sum()


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=0.8, top_k=5),
        SamplingParams(temperature=1.3, top_p=0.7),
        SamplingParams(temperature=0.9, top_k=8, top_p=0.8),
        SamplingParams(temperature=1.0),
    ],
    ids=["top_k", "top_p", "top_k+top_p", "plain"],
)
def test_sampled_frequencies_match_numpy_reference(params):
    logits = np.random.default_rng(0).normal(size=40).astype(np.float64) * 2
    top_logits, top_ids, log_z = _candidates(logits, params)
    rng = random.Random(1234)
    draws = 20_000
    counts = np.zeros_like(logits)
    for _ in range(draws):
        counts[choose(top_logits, top_ids, log_z, params, rng)] += 1
    expected = _reference_distribution(logits, params)
    # 4 standard deviations of a binomial frequency at the worst p (0.5): 4 * 0.5 / sqrt(20000) = 0.014.
    assert np.abs(counts / draws - expected).max() < 0.014
    assert counts[expected == 0].sum() == 0, "a token outside the nucleus was drawn"


def test_seeded_draws_repeat_and_differ_by_seed():
    logits = np.random.default_rng(1).normal(size=30)
    params = SamplingParams(temperature=1.0, seed=7)
    cands = _candidates(logits, params)

    def run(seed):
        rng = random.Random(seed)
        return [choose(*cands, params, rng) for _ in range(50)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_greedy_takes_the_first_candidate():
    assert choose([3.0, 2.0], [11, 4], 5.0, SamplingParams(greedy=True), random.Random(0)) == 11
    assert SamplingParams(greedy=True).candidates == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.0),
        ("temperature", -1.0),
        ("temperature", math.nan),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_p", math.nan),
        ("top_k", -1),
        ("repetition_penalty", 0.0),
        ("repetition_penalty", math.inf),
        ("max_new_tokens", 0),
        ("stop_strings", ("",)),
        ("min_new_tokens", -1),
    ],
)
def test_invalid_settings_are_one_clear_error(field, value):
    with pytest.raises(GenerationInputError, match=field.split("_")[0]):
        SamplingParams(**{field: value})


def test_banned_tokens_leave_a_renormalised_distribution():
    """min_new_tokens: the eos logit as if -inf before the softmax, the other probabilities rescaled."""
    logits = [2.0, 1.5, 0.5, -1.0]
    ids = [7, 2, 9, 4]
    log_z = math.log(sum(math.exp(x) for x in logits) + 3.0)  # mass beyond the candidates too
    kept_logits, kept_ids, kept_log_z = without_tokens(logits, ids, log_z, frozenset({2}), keep=2)
    assert kept_ids == [7, 9] and kept_logits == [2.0, 0.5]  # eos gone, top-2 of the rest
    expected = math.log(math.exp(log_z) - math.exp(1.5))
    assert math.isclose(kept_log_z, expected, rel_tol=1e-12)
    assert choose(kept_logits, kept_ids, kept_log_z, SamplingParams(greedy=True), random.Random(0)) == 7
