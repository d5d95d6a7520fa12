"""One chat turn on a loaded Runtime: the one place a reply to a conversation is made.

Every caller goes through it: `qwen35web chat` and `qwen35web serve` (through `Conversation`, which
keeps the messages between turns), and the page (`browser/session.py` `WebSession.generate`, which
gets the whole conversation with each request). What differs between them is passed in, not
written again: the messages (with any images already registered and named by id), the options
below, the cancel token, and how the pieces reach a person (the caller iterates them).

    turn = Turn(runtime, messages, params, TurnOptions(...), cancel)  # refuses before any output
    async for piece in turn.pieces():    # "reasoning" | "text" | "tool_call" (piece.call)
        ...
    turn.result: TurnResult; turn.messages: the conversation with the reply recorded (as the
    template renders a past assistant turn); turn.dropped: messages left out to fit the context

A turn renders the whole conversation with the bundle's template (so the model sees exactly what the
template would show it), fits it to the context (context_fit: refused when full, or its oldest turns
dropped when asked), and leaves it to the prefix cache to run only what no kept state holds. The
reply is split into reasoning, answer and tool calls as it streams. Afterwards, while the reply is
read, the next turn's opening is prefilled in the background (prefill_ahead), unless asked not to.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from qwen35web.runtime.chat import Message
from qwen35web.runtime.context_fit import Fitted, fit
from qwen35web.runtime.generation import CancelToken, GenerationResult
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.logprobs import TokenLogprob
from qwen35web.runtime.prefill_ahead import prepare_next_turn, turn_keep_points
from qwen35web.runtime.prompt import Prompt
from qwen35web.runtime.reasoning import Piece, ReasoningSplitter
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.tool_calls import ToolCall, ToolCallParser
from qwen35web.runtime.tools import Tool, parse_tool_choice


@dataclass(frozen=True)
class TurnOptions:
    """What a turn is asked besides sampling. `tools`: checked OpenAI function schemas
    (tools.check_tools); `tool_choice` OpenAI's ("auto", "none", "required", or a named function);
    `response_format` {"type": "json_schema", ...} or {"type": "json_object"} (constraint.py);
    `top_logprobs` (0-20) scores each generated token (logprobs.py)."""

    enable_thinking: bool | None = None  # None: the template's own default (not passed)
    tools: Sequence[Tool] = ()
    tool_choice: Any = None
    response_format: Any = None
    top_logprobs: int | None = None
    drop_oldest: bool = False  # a conversation too long for the context loses its oldest turns
    prefill_ahead: bool = True  # after the reply, prefill the next turn's opening in the background
    last_logits: bool = False  # keep the last fed position's logits (parity checks; `Turn.last_logits`)


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
    render_ms: float = 0.0  # rendering and tokenising the conversation (part of first_token_ms)
    decode_ms: float = 0.0
    decode_tokens_per_s: float = 0.0
    python_share: float = 0.0  # of decode time, spent outside the engine
    stop_reason: str = ""
    images_encoded: int = 0
    context_tokens: int = 0  # the context's size, for "used / total"
    dropped_messages: int = 0  # the oldest messages dropped to fit this turn (drop_oldest)
    dropped_turns: int = 0
    reasoning_cut: bool = False  # a reasoning budget closed the reasoning (its tokens are in `tokens`)
    tool_calls: list[ToolCall] = field(default_factory=list)  # in order; a malformed one has .error
    logprobs: list[TokenLogprob] = field(default_factory=list)  # per token, when asked

    @classmethod
    def of(cls, result: GenerationResult, text: str, reasoning: str, context: int) -> TurnResult:
        return cls(
            tokens=list(result.tokens),
            text=text,
            reasoning=reasoning,
            prompt_tokens=result.prompt_tokens,
            reused_tokens=result.reused_tokens,
            prefilled_tokens=result.prefilled_tokens,
            prefill_ms=result.prefill_ms,
            first_token_ms=result.first_token_ms,
            decode_ms=result.decode_ms,
            decode_tokens_per_s=result.decode_tokens_per_s,
            python_share=result.python_share,
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


def render(runtime: Runtime, messages: list[Message], options: TurnOptions) -> Prompt:
    """The conversation as the bundle's template shows it to the model (with the turn's tools)."""
    tools = list(options.tools) or None
    return runtime.prompt(messages=messages, enable_thinking=options.enable_thinking, tools=tools)


def fit_turn(runtime: Runtime, messages: Sequence[Message], options: TurnOptions, reply_room: int) -> Fitted:
    """`messages` rendered and fitted to the context, leaving `reply_room` tokens for the reply:
    refused when full (ContextFullError), or with `options.drop_oldest` the oldest turns left out."""
    return fit(
        lambda chosen: render(runtime, chosen, options),
        messages,
        runtime.max_context,
        reply_room,
        options.drop_oldest,
    )


class Turn:
    """One reply to `messages` (the last a user or tool message). Everything that can refuse the
    turn (the context, the tool choice, the output constraint) does so here, before any output."""

    def __init__(
        self,
        runtime: Runtime,
        messages: Sequence[Message],
        params: SamplingParams,
        options: TurnOptions | None = None,
        cancel: CancelToken | None = None,
    ):
        # Imported on first use: the grammar modules are not needed to open a session (page start-up).
        from qwen35web.runtime.constraint import output_constraint

        started = time.perf_counter()
        options = options or TurnOptions()
        self.runtime, self.params, self.options, self.cancel = runtime, params, options, cancel
        self.given = list(messages)
        self.fitted = fit_turn(runtime, self.given, options, params.max_new_tokens)
        self.choice = parse_tool_choice(options.tool_choice, list(options.tools))
        prompt = self.fitted.prompt
        tools = list(options.tools)
        self.constraint = output_constraint(runtime, prompt, tools, self.choice, options.response_format)
        self.render_ms = (time.perf_counter() - started) * 1000  # rendering and tokenising the conversation
        self.result: TurnResult | None = None  # after the pieces
        self.messages: list[Message] = []  # the conversation with the reply recorded, after the pieces
        self.dropped: list[Message] = []  # the given messages left out to fit, oldest first
        self.last_logits: list[float] | None = None  # with options.last_logits, after the pieces

    @property
    def prompt(self) -> Prompt:
        return self.fitted.prompt

    async def pieces(self) -> AsyncIterator[Piece]:
        """The reply as it streams: reasoning, answer text and tool calls (a stopped reply ends
        early and is recorded as far as it went)."""
        prompt, options = self.prompt, self.options
        splitter = ReasoningSplitter(prompt.opens_reasoning)
        tools = list(options.tools)
        parser = ToolCallParser(tools) if tools and self.choice.mode != "none" else None
        # The prefix cache resumes from the longest kept state: only new tokens are prefilled (and
        # only images whose tokens no kept state holds go through the vision graph).
        keep_at = turn_keep_points(self.runtime, prompt, options.prefill_ahead)
        stream = self.runtime.stream(
            prompt.ids,
            self.params,
            self.cancel,
            keep_at,
            prompt.images,
            self.constraint,
            options.top_logprobs,
        )
        async for text in stream:
            for piece in split_calls(splitter.push(text), parser):
                yield piece
        for piece in split_calls(splitter.flush(), parser, final=True):
            yield piece
        self._record(splitter, parser)
        if options.last_logits:
            self.last_logits = await self.runtime.runner.last_logits()
        if options.prefill_ahead:  # while the reply is read: the next turn's opening
            prepare_next_turn(self.runtime, self.messages, options.enable_thinking, prompt.keep_at)

    def _record(self, splitter: ReasoningSplitter, parser: ToolCallParser | None) -> None:
        text = parser.content if parser is not None else splitter.text
        generated = self.runtime.generator.result
        result = TurnResult.of(generated, text, splitter.reasoning, self.runtime.max_context)
        result.tool_calls = list(parser.calls) if parser is not None else []
        result.first_token_ms += self.render_ms  # from the call: rendering and tokenising included
        result.render_ms = self.render_ms
        fitted = self.fitted
        result.dropped_messages, result.dropped_turns = fitted.dropped_messages, fitted.dropped_turns
        if fitted.dropped_messages:
            kept = {id(m) for m in fitted.messages}
            self.dropped = [m for m in self.given if id(m) not in kept]
        self.messages = [*fitted.messages, assistant_message(text, splitter.reasoning, result.tool_calls)]
        self.result = result


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
