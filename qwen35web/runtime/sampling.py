"""Sampling settings and the choice of the next token from k candidates (O(k) per token).

The candidates come from the bundle's sampler graph: the k largest scaled logits, their ids and
the log-normaliser over the whole vocabulary, so probabilities here are exact, not renormalised
over the candidates. The random numbers come from Python's own Mersenne Twister
(`random.Random(seed)`), the same algorithm in CPython and in Pyodide: a seed gives the same
draws natively and in the browser.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from qwen35web.runtime.errors import GenerationInputError

# Without top_k, candidates are the 256 most likely tokens; the mass beyond them is not sampled.
MAX_CANDIDATES = 256
# OpenAI's range for presence_penalty and frequency_penalty.
MAX_ADDITIVE_PENALTY = 2.0
# Fed before the closing tag when a reasoning budget runs out (our own wording).
DEFAULT_NUDGE = "Time is up: I will stop thinking here and give my best answer now."


@dataclass(frozen=True)
class SamplingParams:
    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k cut (MAX_CANDIDATES still bounds the candidates)
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0  # OpenAI semantics over the reply's tokens (runtime/penalties.py)
    frequency_penalty: float = 0.0
    seed: int | None = None
    max_new_tokens: int = 128
    stop_strings: tuple[str, ...] = field(default_factory=tuple)
    min_new_tokens: int = 0  # end-of-sequence ids are never chosen before this many tokens
    # After this many reasoning tokens the runtime closes the reasoning (runtime/reasoning_budget.py);
    # None: no limit. `reasoning_nudge`, a sentence, is fed first ("": only the closing tag).
    reasoning_budget: int | None = None
    reasoning_nudge: str = DEFAULT_NUDGE

    def __post_init__(self) -> None:
        checks = [
            (
                _finite(self.temperature) and self.temperature > 0,
                f"temperature must be > 0, got {self.temperature}",
            ),
            (
                isinstance(self.top_k, int) and self.top_k >= 0,
                f"top_k must be an integer >= 0, got {self.top_k}",
            ),
            (_finite(self.top_p) and 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (
                _finite(self.repetition_penalty) and self.repetition_penalty > 0,
                f"repetition_penalty must be > 0, got {self.repetition_penalty}",
            ),
            *(
                (
                    _finite(value) and -MAX_ADDITIVE_PENALTY <= value <= MAX_ADDITIVE_PENALTY,
                    f"{name} must be in [-{MAX_ADDITIVE_PENALTY}, {MAX_ADDITIVE_PENALTY}], got {value}",
                )
                for name, value in (
                    ("presence_penalty", self.presence_penalty),
                    ("frequency_penalty", self.frequency_penalty),
                )
            ),
            (
                self.reasoning_budget is None
                or (_is_int(self.reasoning_budget) and self.reasoning_budget >= 1),
                f"reasoning_budget must be an integer >= 1, got {self.reasoning_budget!r}",
            ),
            (isinstance(self.reasoning_nudge, str), "reasoning_nudge must be text"),
            (
                isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1,
                f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens}",
            ),
            (self.seed is None or isinstance(self.seed, int), f"seed must be an integer, got {self.seed!r}"),
            (
                isinstance(self.min_new_tokens, int) and self.min_new_tokens >= 0,
                f"min_new_tokens must be an integer >= 0, got {self.min_new_tokens}",
            ),
            (
                all(isinstance(s, str) and s for s in self.stop_strings),
                "stop strings must be non-empty strings",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise GenerationInputError(message)

    @property
    def candidates(self) -> int:
        """How many candidates the sampler graph must return."""
        if self.greedy:
            return 1
        return min(self.top_k, MAX_CANDIDATES) if self.top_k else MAX_CANDIDATES

    @property
    def effective_temperature(self) -> float:
        return 1.0 if self.greedy else self.temperature


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def nucleus(top_logits: list[float], log_normalizer: float, params: SamplingParams) -> list[float]:
    """Probabilities of the kept candidates (descending order), after top-k and top-p cuts.

    Same order as transformers' warpers: temperature, then top-k, then top-p over the
    renormalised top-k distribution. Without top-k the normaliser is the whole vocabulary's.
    """
    probs = [math.exp(v - log_normalizer) for v in top_logits[: params.candidates]]
    if params.top_k:
        total = sum(probs)
        probs = [p / total for p in probs]
    if params.top_p < 1.0:
        total, kept = 0.0, 0
        for p in probs:
            kept += 1
            total += p
            if total >= params.top_p:
                break
        probs = probs[:kept]
    return probs


class ScaledLogits:
    """`logit_of(id)`: a raw logit as the sampler graph scales it (repetition penalty on `seen`
    ids, then the presence/frequency biases, then the effective temperature), computed only for
    the ids asked about. It keeps the raw `row` and the `adjusted` ids (penalised or biased): on
    every other id the scaled logit is `row[id] / temperature`, monotone in the raw one, so a
    caller ranking many ids can rank raw values at C speed (constraint.py's whole-row pass)."""

    __slots__ = ("adjusted", "bias_of", "penalised", "penalty", "row", "temperature")

    def __init__(
        self,
        row: Sequence[float],
        params: SamplingParams,
        seen: list[int],
        biases: tuple[list[int], list[float]],
    ):
        self.row = row
        self.penalised = frozenset(seen) if params.repetition_penalty != 1.0 else frozenset()
        self.penalty, self.temperature = params.repetition_penalty, params.effective_temperature
        self.bias_of = dict(zip(*biases, strict=True))
        self.adjusted = self.penalised.union(self.bias_of)

    def __call__(self, token: int) -> float:
        value = self.row[token]
        if token in self.penalised:
            value = value / self.penalty if value > 0 else value * self.penalty
        return (value - self.bias_of.get(token, 0.0)) / self.temperature


def scaled_logits(
    row: Sequence[float],
    params: SamplingParams,
    seen: list[int],
    biases: tuple[list[int], list[float]] = ([], []),
) -> ScaledLogits:
    """`logit_of(id)` over a raw row of logits (see ScaledLogits)."""
    return ScaledLogits(row, params, seen, biases)


def without_tokens(
    top_logits: list[float], top_ids: list[int], log_normalizer: float, banned: frozenset[int], keep: int
) -> tuple[list[float], list[int], float]:
    """The candidates minus `banned` ids, at most `keep` of them, renormalised as if the banned
    logits were -inf before the softmax (transformers' min_new_tokens)."""
    kept = [(logit, token) for logit, token in zip(top_logits, top_ids, strict=True) if token not in banned]
    removed = [logit for logit, token in zip(top_logits, top_ids, strict=True) if token in banned]
    mass = sum(math.exp(logit - log_normalizer) for logit in removed)
    renormalised = log_normalizer + math.log1p(-min(mass, 1 - 1e-12))
    kept = kept[:keep]
    return [logit for logit, _ in kept], [token for _, token in kept], renormalised


def choose(
    top_logits: list[float],
    top_ids: list[int],
    log_normalizer: float,
    params: SamplingParams,
    rng: random.Random,
) -> int:
    """The next token: the first candidate when greedy, else a draw from the kept candidates."""
    if params.greedy:
        return top_ids[0]
    probs = nucleus(top_logits, log_normalizer, params)
    threshold = rng.random() * sum(probs)
    running = 0.0
    for token, p in zip(top_ids, probs, strict=False):
        running += p
        if running > threshold:
            return token
    return top_ids[len(probs) - 1]
