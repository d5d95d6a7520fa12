"""The whole-row pass of constrained sampling ranks raw logits first (constraint._shortlist) and
must pick exactly what ranking every allowed id by its scaled logit picks: over a table of random
rows, with ties, rounding under a temperature, penalties, biases and banned ids."""

from __future__ import annotations

import heapq
import random
from array import array

import pytest

from qwen35web.runtime.constraint import _shortlist, best_allowed
from qwen35web.runtime.sampling import SamplingParams, scaled_logits

VOCAB = 40_000


def reference(allowed, logit_of, size, banned):
    """The plain ranking (the constraint's first design): every allowed id by (scaled logit, -id)."""
    return heapq.nlargest(size, set(allowed) - banned, key=lambda t: (logit_of(t), -t))


def random_row(rng: random.Random, kind: str, allowed: array) -> list[float]:
    if kind == "strided":  # the best values sit exactly where the floor's sample looks
        row = [rng.gauss(0.0, 1.0) for _ in range(VOCAB)]
        for token in allowed[::16]:
            row[token] = 10.0 + rng.random()
        return row
    if kind == "gauss":
        return [rng.gauss(0.0, 3.0) for _ in range(VOCAB)]
    if kind == "ties":  # few distinct values: ties everywhere, won by the lower id
        return [float(rng.randrange(6)) for _ in range(VOCAB)]
    if kind == "close":  # neighbours a few ulps apart, which a temperature rounds together
        base = 1.2345678
        return [base + rng.randrange(8) * 2.0**-52 * base for _ in range(VOCAB)]
    if kind == "masked":  # most of the row -inf, as a masked model would give
        return [rng.gauss(0.0, 1.0) if rng.random() < 0.01 else float("-inf") for _ in range(VOCAB)]
    return [-abs(rng.gauss(0.0, 1e-3)) for _ in range(VOCAB)]  # "small": near zero, one sign


CASES = [
    (kind, params, seed)
    for seed in range(2)
    for kind in ("gauss", "ties", "close", "masked", "small", "strided")
    for params in (
        SamplingParams(greedy=True),
        SamplingParams(temperature=1.0),
        SamplingParams(temperature=0.7, top_k=40),
        SamplingParams(temperature=3.0, repetition_penalty=1.3),
    )
]


@pytest.mark.parametrize(("kind", "params", "seed"), CASES)
def test_the_fast_whole_row_pass_picks_what_ranking_every_id_picks(kind, params, seed):
    rng = random.Random(f"{kind}/{seed}")
    allowed = array("i", sorted(rng.sample(range(VOCAB), rng.choice([VOCAB - 7, VOCAB // 2, 30_000]))))
    row = random_row(rng, kind, allowed)
    seen = rng.sample(range(VOCAB), 50)
    biases = (rng.sample(range(VOCAB), 20), [rng.uniform(-2.0, 2.0) for _ in range(20)])
    banned = frozenset(rng.sample(list(allowed), 3)) if seed else frozenset()
    logit_of = scaled_logits(row, params, seen, biases)
    size = 1 if params.greedy else params.candidates
    expected = reference(allowed, logit_of, size, banned)
    assert best_allowed(allowed, logit_of, size, banned) == expected
    # the same ranking through a plain callable (no raw row to shortlist from)
    assert best_allowed(allowed, lambda t: logit_of(t), size, banned) == expected


def test_a_large_allowed_set_is_ranked_from_the_raw_row():
    rng = random.Random(0)
    row = [rng.gauss(0.0, 1.0) for _ in range(VOCAB)]
    shortlist = _shortlist(array("i", range(VOCAB)), scaled_logits(row, SamplingParams(), [], ([], [])), 256)
    assert shortlist is not None and 256 <= len(shortlist) < 1024
