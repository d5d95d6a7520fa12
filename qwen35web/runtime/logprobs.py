"""Log-probabilities of generated tokens (OpenAI's `logprobs` / `top_logprobs`).

The sampler graph gives the k best scaled logits and the log-normaliser over the whole vocabulary,
so a candidate's log-probability is exact: `logit - log_z`. It is taken at the sampling's
effective temperature (the `temperature` setting; 1.0 when greedy), after the repetition penalty
and before top-k / top-p cuts and before any output constraint: it is the model's own
distribution at that temperature, as vLLM reports it by default. A chosen token outside the
candidates (possible only under a constraint) is scored from the full-vocabulary pass that chose it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_TOP_LOGPROBS = 20  # OpenAI's limit


class TokenText(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str: ...

    def token_bytes(self, token_id: int) -> bytes | None: ...


@dataclass(frozen=True)
class Alternative:
    token_id: int
    token: str  # the token's text (U+FFFD where it holds part of a character)
    bytes: tuple[int, ...]
    logprob: float

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "bytes": list(self.bytes), "logprob": self.logprob}


@dataclass(frozen=True)
class TokenLogprob(Alternative):
    top_logprobs: tuple[Alternative, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "top_logprobs": [a.to_json() for a in self.top_logprobs]}


def _alternative(tokenizer: TokenText, token_id: int, logprob: float) -> Alternative:
    data = tokenizer.token_bytes(token_id) or b""
    return Alternative(token_id, tokenizer.decode([token_id]), tuple(data), logprob)


def score_token(
    tokenizer: TokenText,
    token_id: int,
    top_logits: list[float],
    top_ids: list[int],
    log_normalizer: float,
    top: int,
) -> TokenLogprob | None:
    """The chosen token's log-probability and the `top` most likely alternatives; None when the
    token is not among the candidates (it cannot be scored exactly)."""
    try:
        index = top_ids.index(token_id)
    except ValueError:
        return None
    alternatives = tuple(
        _alternative(tokenizer, i, logit - log_normalizer)
        for logit, i in zip(top_logits[:top], top_ids[:top], strict=True)
    )
    chosen = _alternative(tokenizer, token_id, top_logits[index] - log_normalizer)
    return TokenLogprob(chosen.token_id, chosen.token, chosen.bytes, chosen.logprob, alternatives)
