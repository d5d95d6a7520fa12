"""One chat-completions request run on a loaded Runtime: the response object, or the stream's chunks.

    completion = ChatCompletion(runtime, request, model_id)
    await completion.open(cancel)         # ApiError on anything it cannot do, before any output
    async for chunk in completion.chunks(): ...     # stream: chat.completion.chunk objects
    response = await completion.response()          # or: one chat.completion object

The request's messages become a runtime `Conversation` (with its tools) and the reply to them is
`Conversation.reply`: the whole conversation is rendered with the bundle's template every time, and
the runtime's prefix cache runs only what a kept state does not already hold
(`usage.prompt_tokens_details.cached_tokens` says how many tokens that was). Reasoning
(`<think>...</think>`) comes back as `reasoning_content`, apart from `content`; tool calls as
OpenAI's `tool_calls` (arguments a JSON string), finish_reason "tool_calls". A call the model wrote
that cannot be read (malformed, unknown tool) is not a call: its text stays in `content`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

from qwen35web.runtime.context_fit import ContextFullError
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.errors import GenerationInputError, RuntimeUserError
from qwen35web.runtime.generation import CancelToken
from qwen35web.runtime.generation_defaults import with_bundle_defaults
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.openai_api.errors import ApiError, not_found
from qwen35web.runtime.openai_api.messages import AddImage, runtime_messages
from qwen35web.runtime.openai_api.request import ChatRequest
from qwen35web.runtime.reasoning import Piece
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.tool_calls import ToolCall
from qwen35web.runtime.turn import TurnResult

DEFAULT_MAX_TOKENS = 4096
# The runtime's stop reasons -> OpenAI's finish_reason.
FINISH_REASONS = {
    "eos": "stop",
    "stop_string": "stop",
    "max_new_tokens": "length",
    "context_full": "length",
    "cancelled": "stop",  # nobody reads it: the client has gone
}
NOT_SUPPORTED = "is not supported by this server version"


def check_model(requested: str, model_id: str) -> None:
    if requested != model_id:
        raise not_found(
            f"the model {requested!r} does not exist: this server serves {model_id!r}", code="model_not_found"
        )


def _penalties(request: ChatRequest) -> dict[str, Any]:
    """presence/frequency penalties given, for a sampler that has them (else a non-zero one is refused:
    an answer must not silently ignore a setting)."""
    known = {f.name for f in fields(SamplingParams)}
    given = {"presence_penalty": request.presence_penalty, "frequency_penalty": request.frequency_penalty}
    for name, value in given.items():
        if value and name not in known:
            raise ApiError(f"'{name}' {NOT_SUPPORTED}", param=name, code="unsupported_parameter")
    return {name: value for name, value in given.items() if name in known}


def sampling_params(
    request: ChatRequest, generation: dict[str, Any], default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> SamplingParams:
    """The request's settings over the bundle's defaults (temperature 0: greedy)."""
    temperature = request.temperature
    user = {
        "greedy": None if temperature is None else temperature == 0,
        "temperature": temperature or None,
        "top_k": request.top_k,
        "top_p": request.top_p,
        "repetition_penalty": request.repetition_penalty,
        **_penalties(request),  # None (not given): the bundle's default where it has one
    }
    try:
        return SamplingParams(
            **with_bundle_defaults(user, generation),
            seed=request.seed,
            max_new_tokens=request.max_tokens or default_max_tokens,
            min_new_tokens=request.min_tokens,
            stop_strings=request.stop,
        )
    except GenerationInputError as err:
        raise ApiError(str(err)) from None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens a kept state already held: not run again

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }


class ChatCompletion:
    def __init__(
        self,
        runtime: Runtime,
        request: ChatRequest,
        model_id: str,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ):
        self.runtime = runtime
        self.request = request
        self.model_id = model_id
        self.default_max_tokens = default_max_tokens
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.conversation: Conversation | None = None
        self._pieces: AsyncIterator[Piece] | None = None
        self._first: list[Piece] = []  # the first piece, taken by `open`
        self.calls: list[ToolCall] = []  # well-formed calls, in order
        self._logprobs_sent = 0

    async def open(self, cancel: CancelToken | None = None, add_image: AddImage | None = None) -> None:
        """Everything that can refuse the request, before any output: the model name, the fields,
        images, tools, the rendered conversation against the context, the output constraint. The
        prefill runs here too (the first piece of the reply is waited for)."""
        request, runtime = self.request, self.runtime
        check_model(request.model, self.model_id)
        params = sampling_params(request, runtime.manifest.generation, self.default_max_tokens)
        messages = runtime_messages(request.messages, add_image or runtime.add_image)
        top_logprobs = (request.top_logprobs or 0) if request.logprobs else None
        options = {
            "tool_choice": request.tool_choice,
            "response_format": request.response_format,
            "top_logprobs": top_logprobs,
        }
        try:
            self.conversation = Conversation(
                runtime, messages=messages, tools=request.tools, enable_thinking=request.enable_thinking
            )
            self._pieces = aiter(self.conversation.reply(params, cancel, **options))
            self._first = [await anext(self._pieces)]
        except StopAsyncIteration:
            self._first = []
        except ContextFullError as err:
            raise ApiError(str(err), param="messages", code="context_length_exceeded") from None
        except RuntimeUserError as err:
            raise ApiError(str(err)) from None

    async def pieces(self) -> AsyncIterator[Piece]:
        """The reply after `open`, split into reasoning, answer and tool calls."""
        assert self._pieces is not None, "open() first"
        for piece in self._first:
            yield piece
        async for piece in self._pieces:
            yield piece

    @property
    def result(self) -> TurnResult:
        assert self.conversation is not None and self.conversation.last is not None
        return self.conversation.last

    @property
    def finish_reason(self) -> str:
        if self.calls:
            return "tool_calls"
        return FINISH_REASONS.get(self.result.stop_reason, "stop")

    @property
    def usage(self) -> Usage:
        result = self.result
        return Usage(result.prompt_tokens, len(result.tokens), result.reused_tokens)

    def _new_logprobs(self) -> dict[str, Any] | None:
        """The generated tokens' logprobs not yet sent (streaming: they ride on the next chunk)."""
        if not self.request.logprobs:
            return None
        entries = self.runtime.generator.result.logprobs[self._logprobs_sent :]
        self._logprobs_sent += len(entries)
        return {"content": [entry.to_json() for entry in entries], "refusal": None}

    def _delta(self, piece: Piece) -> dict[str, Any]:
        if piece.kind == "reasoning":
            return {"reasoning_content": piece.text}
        if piece.kind == "tool_call" and piece.call is not None and not piece.call.error:
            self.calls.append(piece.call)
            return {"tool_calls": [{"index": len(self.calls) - 1, **piece.call.to_openai()}]}
        if piece.kind == "tool_call":  # a call that could not be read: shown as the model wrote it
            return {"content": piece.text}
        return {"content": piece.text}

    def chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, logprobs: Any = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model_id,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
        }
        if self.request.include_usage:
            chunk["usage"] = None
        return chunk

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        """The stream: the role, then one delta per piece (`content`, `reasoning_content` or one
        `tool_calls` entry), then the finish reason; with stream_options.include_usage a last chunk
        with `usage` and no choices."""
        yield self.chunk({"role": "assistant", "content": ""})
        async for piece in self.pieces():
            yield self.chunk(self._delta(piece), logprobs=self._new_logprobs())
        yield self.chunk({}, self.finish_reason, self._new_logprobs())
        if self.request.include_usage:
            last = self.chunk({})
            last["choices"], last["usage"] = [], self.usage.to_json()
            yield last

    async def response(self) -> dict[str, Any]:
        async for piece in self.pieces():
            self._delta(piece)
        assert self.conversation is not None
        recorded = self.conversation.messages[-1]  # the reply as the template will see it again
        content = recorded.get("content") or ""
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if self.calls:
            message["content"] = content or None
            message["tool_calls"] = [call.to_openai() for call in self.calls]
        if self.result.reasoning:
            message["reasoning_content"] = self.result.reasoning
        choice = {
            "index": 0,
            "message": message,
            "logprobs": self._new_logprobs(),
            "finish_reason": self.finish_reason,
        }
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model_id,
            "system_fingerprint": None,
            "choices": [choice],
            "usage": self.usage.to_json(),
        }


def model_list(model_id: str, created: int) -> dict[str, Any]:
    """GET /v1/models: the one model this runtime serves."""
    return {"object": "list", "data": [model_object(model_id, created)]}


def model_object(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "qwen35web"}
