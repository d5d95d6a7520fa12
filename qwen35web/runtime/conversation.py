"""A conversation on one loaded bundle: the messages so far, one turn at a time.

Each turn renders the whole conversation with the bundle's template (so the model sees exactly
what the template would show it) and leaves it to the prefix cache to run only what is new. The
reply comes back split into reasoning and answer (`reasoning.Piece`s) and is recorded the way the
template expects a past assistant turn: `content`, with `reasoning_content` beside it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from qwen35web.runtime.chat import Message
from qwen35web.runtime.context_fit import Fitted, fit
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.generation import CancelToken, GenerationResult
from qwen35web.runtime.prefill_ahead import prepare, prepare_next_turn
from qwen35web.runtime.prompt import Prompt
from qwen35web.runtime.reasoning import Piece, ReasoningSplitter
from qwen35web.runtime.runtime import Runtime
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.vision.prompt import image_message


@dataclass
class TurnResult:
    tokens: list[int] = field(default_factory=list)  # generated ids, end-of-sequence excluded
    text: str = ""
    reasoning: str = ""
    prompt_tokens: int = 0  # the whole rendered conversation
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    prefill_ms: float = 0.0
    first_token_ms: float = 0.0
    decode_tokens_per_s: float = 0.0
    stop_reason: str = ""
    images_encoded: int = 0
    context_tokens: int = 0  # the context's size, for "used / total"
    dropped_messages: int = 0  # the oldest messages dropped to fit this turn (drop_oldest)
    dropped_turns: int = 0

    @classmethod
    def of(cls, result: GenerationResult, splitter: ReasoningSplitter, context: int) -> TurnResult:
        return cls(
            tokens=list(result.tokens),
            text=splitter.text,
            reasoning=splitter.reasoning,
            prompt_tokens=result.prompt_tokens,
            reused_tokens=result.reused_tokens,
            prefilled_tokens=result.prefilled_tokens,
            prefill_ms=result.prefill_ms,
            first_token_ms=result.first_token_ms,
            decode_tokens_per_s=result.decode_tokens_per_s,
            stop_reason=result.stop_reason,
            images_encoded=result.images_encoded,
            context_tokens=context,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "text": self.text,
            "reasoning": self.reasoning,
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "prefilled_tokens": self.prefilled_tokens,
            "prefill_ms": round(self.prefill_ms, 3),
            "first_token_ms": round(self.first_token_ms, 3),
            "decode_tokens_per_s": round(self.decode_tokens_per_s, 3),
            "stop_reason": self.stop_reason,
            "images_encoded": self.images_encoded,
            "dropped_messages": self.dropped_messages,
            "dropped_turns": self.dropped_turns,
        }


def assistant_message(text: str, reasoning: str) -> Message:
    message: Message = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    return message


class Conversation:
    def __init__(
        self,
        runtime: Runtime,
        system: str | None = None,
        enable_thinking: bool = True,
        messages: list[Message] | None = None,
    ):
        if runtime.manifest.chat_template is None:
            raise GenerationInputError("this bundle has no chat template: it cannot hold a conversation")
        self.runtime = runtime
        self.enable_thinking = enable_thinking
        self.system = system
        self.messages: list[Message] = list(messages) if messages is not None else self._start()
        self.last: TurnResult | None = None
        self.dropped: list[Message] = []  # turns left out to fit the context, oldest first
        self.prefill_ahead = True  # after each reply, prefill the next turn's opening (prefill_ahead)

    def _start(self) -> list[Message]:
        return [{"role": "system", "content": self.system}] if self.system else []

    def reset(self) -> None:
        """A new chat: the messages go; the kept snapshots stay (a new chat may share a prefix)."""
        self.messages = self._start()
        self.last = None
        self.dropped = []
        self.runtime.ahead.cancel()

    def prepare(self, draft: str = "") -> int:
        """Prefill in the background what the next turn starts with: the history as it will be
        rendered, the user turn's opening and the stable part of `draft` (the message as typed so
        far). The next turn waits at most one chunk for it. Returns the tokens aimed at."""
        return prepare(self.runtime, self.messages, draft, self.enable_thinking)

    def fit(
        self, user_text: str, drop_oldest: bool = False, reply_room: int = 1, image_ids: Sequence[str] = ()
    ) -> Fitted:
        """The conversation with `user_text` (after `image_ids`, images added to the runtime) as the
        next user turn, rendered; a full context is refused (ContextFullError), or with
        `drop_oldest` its oldest turns are left out (see context_fit: the caller must say so)."""
        if not user_text.strip():
            raise GenerationInputError("the message is empty")
        messages = [*self.messages, image_message(user_text, image_ids)]

        def render(chosen: list[Message]) -> Prompt:
            return self.runtime.prompt(messages=chosen, enable_thinking=self.enable_thinking)

        return fit(render, messages, self.runtime.max_context, reply_room, drop_oldest)

    def prompt_for(self, user_text: str, image_ids: Sequence[str] = ()) -> Prompt:
        """The rendered conversation with `user_text` as the next user turn; refuses a full context."""
        return self.fit(user_text, image_ids=image_ids).prompt

    async def turn(
        self,
        user_text: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        image_ids: Sequence[str] = (),
        drop_oldest: bool = False,
    ) -> AsyncIterator[Piece]:
        """Stream the reply to `user_text` (with the images of `image_ids` before it); afterwards
        `last` holds its result and the messages hold both turns (a stopped reply is kept as far
        as it went). With `drop_oldest`, a conversation too long for the context loses its oldest
        turns first (`last` and `dropped` say which)."""
        started = time.perf_counter()
        fitted = self.fit(user_text, drop_oldest, reply_room=params.max_new_tokens, image_ids=image_ids)
        prompt = fitted.prompt
        render_ms = (time.perf_counter() - started) * 1000  # rendering and tokenising the conversation
        splitter = ReasoningSplitter(prompt.opens_reasoning)
        stream = self.runtime.stream(prompt.ids, params, cancel, prompt.snapshot_at, prompt.images)
        async for text in stream:
            for piece in splitter.push(text):
                yield piece
        for piece in splitter.flush():
            yield piece
        result = TurnResult.of(self.runtime.generator.result, splitter, self.runtime.max_context)
        result.first_token_ms += render_ms  # from the call: rendering and tokenising included
        result.dropped_messages, result.dropped_turns = fitted.dropped_messages, fitted.dropped_turns
        if fitted.dropped_messages:
            kept = {id(m) for m in fitted.messages}
            self.dropped += [m for m in self.messages if id(m) not in kept]
        self.messages = [*fitted.messages, assistant_message(splitter.text, splitter.reasoning)]
        self.last = result
        if self.prefill_ahead:
            prepare_next_turn(self.runtime, self.messages, self.enable_thinking)

    async def say(
        self,
        user_text: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        image_ids: Sequence[str] = (),
        drop_oldest: bool = False,
    ) -> TurnResult:
        async for _ in self.turn(user_text, params, cancel, image_ids, drop_oldest):
            pass
        assert self.last is not None
        return self.last
