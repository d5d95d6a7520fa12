"""Presence and frequency penalties (OpenAI semantics), as additive biases for the sampler graph.

    logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty

`count[j]` counts token j in the reply generated so far — not in the prompt: OpenAI's parameter
details define c[j] as how often the token was sampled before the current position, and vLLM
penalises tokens by whether/how often they "appear in the generated text so far". Tokens the runtime
feeds into the reply itself (a reasoning budget's closing tokens) are part of that text and count.
The sampler graph applies the biases to the full vocabulary before the temperature and top-k, so
the candidates and the log-normaliser stay exact. Per token the work here grows with the distinct
tokens of the reply, never with the vocabulary.
"""

from __future__ import annotations

from collections import Counter

from qwen35web.runtime.errors import GenerationInputError

OLD_SAMPLER = (
    "this bundle's sampler.onnx predates presence/frequency penalties: re-export the model with "
    "`qwen35web export` to use them"
)


class ReplyTokenCounts:
    """How often each token occurs in the reply so far, and the biases that makes."""

    def __init__(self, presence_penalty: float, frequency_penalty: float):
        self.presence_penalty = presence_penalty
        self.frequency_penalty = frequency_penalty
        self.counts: Counter[int] = Counter()

    @property
    def active(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    def check_supported(self, sampler_takes_biases: bool) -> None:
        """Bundles exported before the penalties existed sample as before, but cannot penalise."""
        if self.active and not sampler_takes_biases:
            raise GenerationInputError(OLD_SAMPLER)

    def add(self, tokens: list[int]) -> None:
        if self.active:
            self.counts.update(tokens)

    def biases(self) -> tuple[list[int], list[float]]:
        """(ids, amounts to subtract from their logits): one entry per distinct token so far."""
        if not self.active:
            return [], []
        ids = list(self.counts)
        amounts = [self.counts[i] * self.frequency_penalty + self.presence_penalty for i in ids]
        return ids, amounts
