"""A conversation on one loaded bundle: the messages so far, one turn at a time.

Each turn is a `turn.Turn` (the one place a reply is made, shared with the page): the whole
conversation rendered with the bundle's template, fitted to the context, resumed from the prefix
cache. The reply comes back split into reasoning, answer and tool calls (`reasoning.Piece`s) and is
recorded the way the template expects a past assistant turn: `content`, with `reasoning_content` and
`tool_calls` beside it.

The API for callers (the CLI, the OpenAI-compatible server and the module's chat.completions):

    conversation = Conversation(runtime, system=..., messages=[...], tools=[...])
    async for piece in conversation.turn("user text", params, tool_choice=..., response_format=...,
                                          top_logprobs=...):   # or conversation.reply(params, ...)
        piece.kind: "reasoning" | "text" | "tool_call" (piece.call: tool_calls.ToolCall)
    conversation.last: TurnResult (text, reasoning, tool_calls, logprobs, usage figures)
    conversation.add_tool_result(call_id, "result text")  # then reply() again

`reply` answers the messages as they stand (the last one a user or tool message); `turn` adds a
user message first. `tools` are OpenAI function schemas (tools.check_tools); `tool_choice`,
`response_format` and `top_logprobs` are `turn.TurnOptions`' (the output then always parses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from qwen35web.runtime.chat import Message
from qwen35web.runtime.context_fit import Fitted
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.generation import CancelToken
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.prefill_ahead import prepare
from qwen35web.runtime.prompt import Prompt
from qwen35web.runtime.reasoning import Piece
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.tools import check_tools, normalize_messages
from qwen35web.runtime.turn import Turn, TurnOptions, TurnResult, fit_turn, render
from qwen35web.runtime.vision.prompt import image_message


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
        """A new chat: the messages go; the kept states stay (a new chat may share a prefix)."""
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

    def _options(self, drop_oldest: bool = False, **options: Any) -> TurnOptions:
        return TurnOptions(
            enable_thinking=self.enable_thinking,
            tools=self.tools,
            drop_oldest=drop_oldest,
            prefill_ahead=self.prefill_ahead,
            **options,
        )

    def render(self, messages: list[Message]) -> Prompt:
        return render(self.runtime, messages, self._options())

    def fit(
        self, user_text: str, drop_oldest: bool = False, reply_room: int = 1, image_ids: Sequence[str] = ()
    ) -> Fitted:
        """The conversation with `user_text` (after `image_ids`, images added to the runtime) as the
        next user turn, rendered; a full context is refused (ContextFullError), or with
        `drop_oldest` its oldest turns are left out (see context_fit: the caller must say so)."""
        messages = self._next(user_text, image_ids)
        return fit_turn(self.runtime, messages, self._options(drop_oldest), reply_room)

    def _next(self, user_text: str, image_ids: Sequence[str]) -> list[Message]:
        if not user_text.strip():
            raise GenerationInputError("the message is empty")
        return [*self.messages, image_message(user_text, image_ids)]

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
        messages = self._next(user_text, image_ids)
        turn = Turn(self.runtime, messages, params, self._options(drop_oldest, **options), cancel)
        async for piece in self._run(turn):
            yield piece

    async def reply(
        self,
        params: SamplingParams,
        cancel: CancelToken | None = None,
        drop_oldest: bool = False,
        **options: Any,
    ) -> AsyncIterator[Piece]:
        """Stream the reply to the messages as they stand (the last a user or tool message).
        `options`: tool_choice, response_format, top_logprobs (turn.TurnOptions)."""
        if not self.messages or self.messages[-1].get("role") not in ("user", "tool"):
            raise GenerationInputError("a reply needs a user or tool message last")
        turn = Turn(self.runtime, self.messages, params, self._options(drop_oldest, **options), cancel)
        async for piece in self._run(turn):
            yield piece

    async def _run(self, turn: Turn) -> AsyncIterator[Piece]:
        async for piece in turn.pieces():
            yield piece
        self.dropped += turn.dropped
        self.messages = turn.messages
        self.last = turn.result

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
