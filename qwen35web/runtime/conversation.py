"""A conversation on one loaded bundle: the messages so far, one turn at a time.

Each turn renders the whole conversation with the bundle's template (so the model sees exactly
what the template would show it) and leaves it to the prefix cache to run only what is new. The
reply comes back split into reasoning, answer and tool calls (`reasoning.Piece`s) and is recorded
the way the template expects a past assistant turn: `content`, with `reasoning_content` and
`tool_calls` beside it.

The API for callers (the CLI, the page, the OpenAI-compatible server):

    conversation = Conversation(runtime, system=..., messages=[...], tools=[...])
    async for piece in conversation.turn("user text", params, tool_choice=..., response_format=...,
                                          top_logprobs=...):   # or conversation.reply(params, ...)
        piece.kind: "reasoning" | "text" | "tool_call" (piece.call: tool_calls.ToolCall)
    conversation.last: TurnResult (text, reasoning, tool_calls, logprobs, usage figures)
    conversation.add_tool_result(call_id, "result text")  # then reply() again

`reply` answers the messages as they stand (the last one a user or tool message); `turn` adds a
user message first. `tools` are OpenAI function schemas (tools.check_tools); `tool_choice` is
OpenAI's ("auto", "none", "required", or {"type": "function", "function": {"name": ...}});
`response_format` is {"type": "json_schema", "json_schema": {"schema": ...}} or {"type":
"json_object"} (constraint.py: the output then always parses). `top_logprobs` (0-20) scores each
generated token (logprobs.py).
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
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.logprobs import TokenLogprob
from qwen35web.runtime.prefill_ahead import prepare, prepare_next_turn, turn_snapshots
from qwen35web.runtime.prompt import Prompt
from qwen35web.runtime.reasoning import Piece, ReasoningSplitter
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.tool_calls import ToolCall, ToolCallParser
from qwen35web.runtime.tools import check_tools, normalize_messages, parse_tool_choice
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
    reasoning_cut: bool = False  # a reasoning budget closed the reasoning (its tokens are in `tokens`)
    tool_calls: list[ToolCall] = field(default_factory=list)  # in order; a malformed one has .error
    logprobs: list[TokenLogprob] = field(default_factory=list)  # per token, when asked

    @classmethod
    def of(
        cls, result: GenerationResult, splitter: ReasoningSplitter, context: int, text: str | None = None
    ) -> TurnResult:
        return cls(
            tokens=list(result.tokens),
            text=splitter.text if text is None else text,
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
            reasoning_cut=result.reasoning_cut,
            logprobs=list(result.logprobs),
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
            "reasoning_cut": self.reasoning_cut,
            "tool_calls": [call.to_json() for call in self.tool_calls],
            **({"logprobs": [entry.to_json() for entry in self.logprobs]} if self.logprobs else {}),
        }


def assistant_message(text: str, reasoning: str, calls: Sequence[ToolCall] = ()) -> Message:
    """The reply as the template renders a past turn. A call that could not be read goes back as
    the text the model wrote (the template cannot render it as a call)."""
    broken = "\n".join(call.raw for call in calls if call.error)
    message: Message = {"role": "assistant", "content": "\n\n".join(t for t in (text, broken) if t)}
    if reasoning:
        message["reasoning_content"] = reasoning
    good = [call.for_template() for call in calls if not call.error]
    if good:
        message["tool_calls"] = good
    return message


class Conversation:
    def __init__(
        self,
        runtime: Runtime,
        system: str | None = None,
        enable_thinking: bool | None = None,  # None: the template's own default (not passed)
        messages: list[Message] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ):
        if runtime.manifest.chat_template is None:
            raise GenerationInputError("this bundle has no chat template: it cannot hold a conversation")
        self.runtime = runtime
        self.enable_thinking = enable_thinking
        self.system = system
        self.tools = check_tools(tools)
        given = normalize_messages(messages) if messages else []
        self.messages: list[Message] = given if messages is not None else self._start()
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

    def add_tool_result(self, tool_call_id: str, content: str, name: str | None = None) -> None:
        """A tool's result, for the calls of the last reply; `reply` then lets the model go on."""
        message: Message = {"role": "tool", "content": content, "tool_call_id": tool_call_id}
        if name is not None:
            message["name"] = name
        self.messages.append(message)

    def render(self, messages: list[Message]) -> Prompt:
        return self.runtime.prompt(messages=messages, enable_thinking=self.enable_thinking, tools=self.tools)

    def fit(
        self, user_text: str, drop_oldest: bool = False, reply_room: int = 1, image_ids: Sequence[str] = ()
    ) -> Fitted:
        """The conversation with `user_text` (after `image_ids`, images added to the runtime) as the
        next user turn, rendered; a full context is refused (ContextFullError), or with
        `drop_oldest` its oldest turns are left out (see context_fit: the caller must say so)."""
        if not user_text.strip():
            raise GenerationInputError("the message is empty")
        messages = [*self.messages, image_message(user_text, image_ids)]
        return fit(self.render, messages, self.runtime.max_context, reply_room, drop_oldest)

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
        **options: Any,
    ) -> AsyncIterator[Piece]:
        """Stream the reply to `user_text` (with the images of `image_ids` before it); afterwards
        `last` holds its result and the messages hold both turns (a stopped reply is kept as far
        as it went). With `drop_oldest`, a conversation too long for the context loses its oldest
        turns first (`last` and `dropped` say which). `options`: as `reply`'s."""
        started = time.perf_counter()
        fitted = self.fit(user_text, drop_oldest, reply_room=params.max_new_tokens, image_ids=image_ids)
        async for piece in self._reply(fitted, params, cancel, started, **options):
            yield piece

    async def reply(
        self,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        drop_oldest: bool = False,
        **options: Any,
    ) -> AsyncIterator[Piece]:
        """Stream the reply to the messages as they stand (the last a user or tool message).
        `options`: tool_choice, response_format, top_logprobs (see the module's docstring)."""
        started = time.perf_counter()
        if not self.messages or self.messages[-1].get("role") not in ("user", "tool"):
            raise GenerationInputError("a reply needs a user or tool message last")
        fitted = fit(self.render, self.messages, self.runtime.max_context, params.max_new_tokens, drop_oldest)
        async for piece in self._reply(fitted, params, cancel, started, **options):
            yield piece

    async def _reply(
        self,
        fitted: Fitted,
        params: SamplingParams,
        cancel: CancelToken | None,
        started: float,
        tool_choice: Any = None,
        response_format: Any = None,
        top_logprobs: int | None = None,
    ) -> AsyncIterator[Piece]:
        from qwen35web.runtime.constraint import output_constraint

        choice = parse_tool_choice(tool_choice, self.tools)
        prompt = fitted.prompt
        constraint = output_constraint(self.runtime, prompt, self.tools, choice, response_format)
        render_ms = (time.perf_counter() - started) * 1000  # rendering and tokenising the conversation
        splitter = ReasoningSplitter(prompt.opens_reasoning)
        parser = ToolCallParser(self.tools) if self.tools and choice.mode != "none" else None
        snapshot_at = turn_snapshots(self.runtime, prompt, self.prefill_ahead)
        stream = self.runtime.stream(
            prompt.ids, params, cancel, snapshot_at, prompt.images, constraint, top_logprobs
        )
        async for text in stream:
            for piece in split_calls(splitter.push(text), parser):
                yield piece
        for piece in split_calls(splitter.flush(), parser, final=True):
            yield piece
        content = parser.content if parser is not None else None
        result = TurnResult.of(self.runtime.generator.result, splitter, self.runtime.max_context, content)
        result.tool_calls = list(parser.calls) if parser is not None else []
        result.first_token_ms += render_ms  # from the call: rendering and tokenising included
        result.dropped_messages, result.dropped_turns = fitted.dropped_messages, fitted.dropped_turns
        if fitted.dropped_messages:
            kept = {id(m) for m in fitted.messages}
            self.dropped += [m for m in self.messages if id(m) not in kept]
        reply = assistant_message(result.text, splitter.reasoning, result.tool_calls)
        self.messages = [*fitted.messages, reply]
        self.last = result
        if self.prefill_ahead:
            prepare_next_turn(self.runtime, self.messages, self.enable_thinking, prompt.snapshot_at)

    async def say(
        self,
        user_text: str,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        image_ids: Sequence[str] = (),
        drop_oldest: bool = False,
        **options: Any,
    ) -> TurnResult:
        async for _ in self.turn(user_text, params, cancel, image_ids, drop_oldest, **options):
            pass
        assert self.last is not None
        return self.last


def split_calls(pieces: list[Piece], parser: ToolCallParser | None, final: bool = False) -> list[Piece]:
    """The answer's pieces with tool calls taken out of the text (reasoning passes as it is);
    `final`: the reply has ended (an unclosed call is reported, held text shown)."""
    if parser is None:
        return pieces
    out: list[Piece] = []
    for piece in pieces:
        if piece.kind != "text":
            out.append(piece)
            continue
        text, calls = parser.push(piece.text)
        out += [Piece("text", text)] if text else []
        out += [Piece("tool_call", call.raw, call) for call in calls]
    if final:
        text, calls = parser.flush()
        out += [Piece("text", text)] if text else []
        out += [Piece("tool_call", call.raw, call) for call in calls]
    return out
