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
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.generation import CancelToken, GenerationResult
from qwen35web.runtime.prompt import Prompt
from qwen35web.runtime.reasoning import Piece, ReasoningSplitter
from qwen35web.runtime.runtime import Runtime
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.vision.prompt import image_message


class ContextFullError(GenerationInputError):
    """The conversation no longer fits the model's context: a new chat is needed."""


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

    def _start(self) -> list[Message]:
        return [{"role": "system", "content": self.system}] if self.system else []

    def reset(self) -> None:
        """A new chat: the messages go; the kept snapshots stay (a new chat may share a prefix)."""
        self.messages = self._start()
        self.last = None

    def prompt_for(self, user_text: str, image_ids: Sequence[str] = ()) -> Prompt:
        """The rendered conversation with `user_text` (after `image_ids`, images added to the
        runtime) as the next user turn; refuses a full context."""
        if not user_text.strip():
            raise GenerationInputError("the message is empty")
        messages = [*self.messages, image_message(user_text, image_ids)]
        prompt = self.runtime.prompt(messages=messages, enable_thinking=self.enable_thinking)
        context = self.runtime.max_context
        if len(prompt.ids) + 1 >= context:
            raise ContextFullError(
                f"the conversation would need {len(prompt.ids)} tokens with this message and the "
                f"context holds {context}: start a new chat"
            )
        return prompt

    async def turn(
        self,
        user_text: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        image_ids: Sequence[str] = (),
    ) -> AsyncIterator[Piece]:
        """Stream the reply to `user_text` (with the images of `image_ids` before it); afterwards
        `last` holds its result and the messages hold both turns (a stopped reply is kept as far
        as it went)."""
        started = time.perf_counter()
        prompt = self.prompt_for(user_text, image_ids)
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
        self.messages += [
            image_message(user_text, image_ids),
            assistant_message(splitter.text, splitter.reasoning),
        ]
        self.last = result

    async def say(
        self,
        user_text: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        image_ids: Sequence[str] = (),
    ) -> TurnResult:
        async for _ in self.turn(user_text, params, cancel, image_ids):
            pass
        assert self.last is not None
        return self.last
