"""Generation: chunked prefill, then decode with sampling, stops and streaming text.

Per token the Python side handles k candidates (the sampler graph reduces the vocabulary on the
device), one sampled id, and the text it completes: the work does not grow with the vocabulary.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.logprobs import MAX_TOP_LOGPROBS, TokenLogprob, score_token
from qwen35web.runtime.penalties import ReplyTokenCounts
from qwen35web.runtime.reasoning_budget import ReasoningBudget
from qwen35web.runtime.runner import ModelRunner
from qwen35web.runtime.sampling import (
    MAX_CANDIDATES,
    SamplingParams,
    choose,
    scaled_logits,
    without_tokens,
)
from qwen35web.runtime.stopping import StopStringFilter
from qwen35web.runtime.vision.prompt import feed_chunk

if TYPE_CHECKING:
    from qwen35web.runtime.prefix_cache import PrefixCache
    from qwen35web.runtime.vision.prompt import ImagePrompt

DEFAULT_PREFILL_CHUNK = 256


class TokenizerLike(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str: ...

    def stream_decoder(self, skip_special_tokens: bool = False) -> Any: ...

    def token_bytes(self, token_id: int) -> bytes | None: ...


class TokenConstraint(Protocol):
    """Which tokens may come next (constrained sampling, see constraint.py)."""

    def pick(
        self,
        top_logits: list[float],
        top_ids: list[int],
        log_normalizer: float,
        params: SamplingParams,
        rng: random.Random,
        remaining: int,
    ) -> int | None:
        """The next token among the sampler's candidates, or None when none fits.
        `remaining`: how many tokens are left to end in."""
        ...

    def pick_whole(
        self,
        logit_of: Callable[[int], float],
        params: SamplingParams,
        rng: random.Random,
        remaining: int,
        banned: frozenset[int],
    ) -> int:
        """The next token from the whole vocabulary (`logit_of(id)`: its scaled logit)."""
        ...

    def advance(self, token: int) -> None: ...


@dataclass
class Step:
    """What choosing one token needs to know."""

    index: int
    params: SamplingParams
    rng: random.Random
    seen: list[int]  # ids the repetition penalty applies to
    constraint: TokenConstraint | None = None
    top_logprobs: int | None = None
    biases: tuple[list[int], list[float]] = ([], [])  # presence/frequency penalties: (ids, amounts)


class CancelToken:
    """Set from anywhere (a Stop button, a signal handler); checked before every decode step."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class GenerationResult:
    prompt_tokens: int = 0
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    stop_reason: str = ""
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    engine_ms: float = 0.0  # time inside the engine during decode (the rest is Python)
    reused_tokens: int = 0  # prompt tokens a kept state already held (prefix_cache)
    prefilled_tokens: int = 0  # prompt tokens run through the model for this call
    images_encoded: int = 0  # images run through the vision graph for this call (reused ones are not)
    first_token_ms: float = 0.0  # from the call to the first chosen token
    reasoning_cut: bool = False  # a reasoning budget closed the reasoning (its tokens are in `tokens`)
    logprobs: list[TokenLogprob] = field(default_factory=list)  # one per token when asked (top_logprobs)

    @property
    def decode_tokens_per_s(self) -> float:
        return len(self.tokens) / (self.decode_ms / 1000) if self.decode_ms > 0 else 0.0

    @property
    def python_share(self) -> float:
        """Fraction of decode time spent outside the engine."""
        return 1 - self.engine_ms / self.decode_ms if self.decode_ms > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "text": self.text,
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "prefilled_tokens": self.prefilled_tokens,
            "images_encoded": self.images_encoded,
            "stop_reason": self.stop_reason,
            "first_token_ms": round(self.first_token_ms, 3),
            "prefill_ms": round(self.prefill_ms, 3),
            "decode_ms": round(self.decode_ms, 3),
            "decode_tokens_per_s": round(self.decode_tokens_per_s, 3),
            "python_share": round(self.python_share, 4),
            "reasoning_cut": self.reasoning_cut,
            **({"logprobs": [entry.to_json() for entry in self.logprobs]} if self.logprobs else {}),
        }


class Emitter:
    """What follows a chosen token (the decode step's second half): the closing tokens a spent
    reasoning budget feeds after it, the constraint's, penalties' and reply's bookkeeping, and the
    text it completes (a stop string's possible start held back)."""

    def __init__(
        self,
        result: GenerationResult,
        constraint: TokenConstraint | None,
        reasoning: ReasoningBudget | None,
        counts: ReplyTokenCounts,
        seen: list[int],
        tokenizer: Any,
        stops: StopStringFilter,
    ):
        self.result, self.constraint, self.reasoning = result, constraint, reasoning
        self.counts, self.seen, self.stops = counts, seen, stops
        self.decoder = tokenizer.stream_decoder(skip_special_tokens=True)

    def emit(self, token: int, scored: TokenLogprob | None, last_step: bool) -> tuple[list[int], str]:
        """The tokens to feed next (`token`, then any closing tokens) and the text they complete."""
        budget = self.reasoning
        fed = [token, *(budget.push(token) if budget is not None and not last_step else ())]
        if self.constraint is not None:  # it reads the fed closing tokens as the reply's own text
            for closing in fed[1:]:
                self.constraint.advance(closing)
        self.result.tokens.extend(fed)
        if scored is not None:
            self.result.logprobs.append(scored)
        self.counts.add(fed)
        if self.seen:  # the repetition penalty's ids (empty when it is off)
            self.seen.extend(t for t in dict.fromkeys(fed) if t not in self.seen)
        piece = self.stops.push("".join(self.decoder.push(t) for t in fed))
        self.result.text += piece
        return fed, piece

    def flush(self) -> str:
        """The text held back at the end (an unfinished character, a stop string's possible start)."""
        tail = self.stops.push(self.decoder.flush()) + self.stops.flush()
        self.result.text += tail
        return tail


class Generator:
    def __init__(
        self,
        runner: ModelRunner,
        tokenizer: TokenizerLike,
        eos_ids: tuple[int, ...],
        max_context: int,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        cache: PrefixCache | None = None,
    ):
        if prefill_chunk < 1:
            raise GenerationInputError(f"prefill chunk must be >= 1, got {prefill_chunk}")
        self.runner = runner
        self.tokenizer = tokenizer
        self.eos_ids = frozenset(eos_ids)
        self.max_context = max_context
        self.prefill_chunk = prefill_chunk
        self.cache = cache  # None: every call prefills its whole prompt from a fresh state
        self.result = GenerationResult()

    def check_prompt(self, prompt_ids: list[int]) -> None:
        if not prompt_ids:
            raise GenerationInputError("the prompt is empty")
        if len(prompt_ids) >= self.max_context:
            raise GenerationInputError(
                f"the prompt has {len(prompt_ids)} tokens; the context holds {self.max_context}"
            )

    async def prefill(
        self, prompt_ids: list[int], keep_at: Sequence[int] = (), images: ImagePrompt | None = None
    ) -> int:
        """Bring the runner to the end of `prompt_ids`; returns how many tokens were reused."""
        if self.cache is not None:
            return await self.cache.prefill(prompt_ids, self.prefill_chunk, keep_at, images)
        self.runner.reset()
        for start in range(0, len(prompt_ids), self.prefill_chunk):
            end = min(start + self.prefill_chunk, len(prompt_ids))
            await feed_chunk(self.runner, prompt_ids, start, end, images)
        return 0

    async def stream(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        cancel: CancelToken | None = None,
        keep_at: Sequence[int] = (),
        images: ImagePrompt | None = None,
        constraint: TokenConstraint | None = None,
        top_logprobs: int | None = None,
    ) -> AsyncIterator[str]:
        """Yield text pieces as tokens complete them; `self.result` holds the totals afterwards.
        `keep_at`: prompt lengths worth a kept state besides the end (the history before the
        generation prompt), so the next call can resume there. `constraint` decides which tokens
        may come next (output that must parse); `top_logprobs` (0-20; None: none) scores each
        generated token and that many alternatives (`result.logprobs`)."""
        self.check_prompt(prompt_ids)
        if top_logprobs is not None and not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
            raise GenerationInputError(f"top_logprobs must be 0..{MAX_TOP_LOGPROBS}, got {top_logprobs}")
        result = self.result = GenerationResult(prompt_tokens=len(prompt_ids))
        started = time.perf_counter()
        await self._prefill_into(result, prompt_ids, keep_at, images)
        decode_start = time.perf_counter()
        result.prefill_ms = (decode_start - started) * 1000
        rng = random.Random(params.seed)
        seen = list(dict.fromkeys(prompt_ids)) if params.repetition_penalty != 1.0 else []
        counts = ReplyTokenCounts(params.presence_penalty, params.frequency_penalty)
        counts.check_supported(self.runner.sampler_takes_biases)
        reasoning = ReasoningBudget.for_prompt(self.tokenizer, prompt_ids, params)
        stops = StopStringFilter(params.stop_strings)
        emitter = Emitter(result, constraint, reasoning, counts, seen, self.tokenizer, stops)
        busy_at_start = self.runner.engine.busy_seconds
        result.stop_reason = "max_new_tokens"
        for step in range(params.max_new_tokens):
            if cancel is not None and cancel.cancelled:
                result.stop_reason = "cancelled"
                break
            token, scored = await self.next_token(
                Step(step, params, rng, seen, constraint, top_logprobs, counts.biases())
            )
            if step == 0:
                result.first_token_ms = (time.perf_counter() - started) * 1000
            if token in self.eos_ids:
                result.stop_reason = "eos"
                break
            last_step = step + 1 == params.max_new_tokens
            fed, piece = emitter.emit(token, scored, last_step)
            if piece:
                yield piece
            if stops.stopped:
                result.stop_reason = "stop_string"
                break
            if self.runner.past_len + len(fed) >= self.max_context:
                result.stop_reason = "context_full"
                break
            if not last_step:
                await self.runner.forward(fed)
        result.reasoning_cut = reasoning is not None and reasoning.cut
        tail = emitter.flush()
        if tail:
            yield tail
        result.decode_ms = (time.perf_counter() - decode_start) * 1000
        result.engine_ms = (self.runner.engine.busy_seconds - busy_at_start) * 1000
        if self.cache is not None:
            self.cache.remember("reply")

    async def _prefill_into(
        self,
        result: GenerationResult,
        prompt_ids: list[int],
        keep_at: Sequence[int],
        images: ImagePrompt | None,
    ) -> None:
        """Prefill the prompt (resuming from the longest kept state) and count what it took."""
        encoded_before = images.store.encoded if images is not None else 0
        result.reused_tokens = await self.prefill(prompt_ids, keep_at, images)
        result.images_encoded = images.store.encoded - encoded_before if images is not None else 0
        result.prefilled_tokens = len(prompt_ids) - result.reused_tokens

    async def next_token(self, step: Step) -> tuple[int, TokenLogprob | None]:
        """Choose the next token (and score it when asked): from the sampler's candidates, or,
        when a constraint allows none of them, from the whole row of logits (read once, scaled
        only where the constraint looks: ranking 248k logits on the device and reading them back
        costs far more than reading the row)."""
        params = step.params
        banned = self.eos_ids if step.index < params.min_new_tokens else frozenset()
        wanted = max(params.candidates, step.top_logprobs or 0) + len(banned)
        ranked = await self._ranked(min(wanted, MAX_CANDIDATES), step)
        scored_from = ranked
        if banned:
            ranked = without_tokens(*ranked, banned, max(params.candidates, step.top_logprobs or 0))
        if step.constraint is None:
            token = choose(*ranked, params, step.rng)
        else:
            remaining = min(params.max_new_tokens - step.index, self.max_context - 1 - self.runner.past_len)
            picked = step.constraint.pick(*ranked, params, step.rng, remaining)
            if picked is None:  # none of the candidates fits: the whole row of logits, then
                logit_of = scaled_logits(await self.runner.last_logits(), params, step.seen, step.biases)
                picked = step.constraint.pick_whole(logit_of, params, step.rng, remaining, banned)
                top_logits, top_ids, log_z = scored_from
                scored_from = ([*top_logits, logit_of(picked)], [*top_ids, picked], log_z)
            token = picked
            step.constraint.advance(token)
        if step.top_logprobs is None:
            return token, None
        return token, score_token(self.tokenizer, token, *scored_from, step.top_logprobs)

    async def _ranked(self, k: int, step: Step) -> tuple[list[float], list[int], float]:
        params = step.params
        return await self.runner.candidates(
            k, params.effective_temperature, params.repetition_penalty, step.seen, step.biases
        )

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams, cancel: CancelToken | None = None
    ) -> GenerationResult:
        async for _ in self.stream(prompt_ids, params, cancel):
            pass
        return self.result
