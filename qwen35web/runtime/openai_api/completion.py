"""One chat-completions request run on a loaded Runtime: the response object, or the stream's chunks.

    completion = ChatCompletion(runtime, request, model_id)
    completion.prepare()                      # renders the prompt; ApiError on anything it cannot do
    async for chunk in completion.chunks(cancel): ...     # stream: chat.completion.chunk objects
    response = await completion.response(cancel)          # or: one chat.completion object

The whole conversation is rendered with the bundle's template every time; the runtime's prefix cache
runs only what a kept state does not already hold, and `usage.prompt_tokens_details.cached_tokens`
says how many tokens that was. Reasoning (`<think>...</think>`) comes back as `reasoning_content`,
apart from `content`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.generation import CancelToken, GenerationResult
from qwen35web.runtime.generation_defaults import with_bundle_defaults
from qwen35web.runtime.openai_api.errors import ApiError, not_found
from qwen35web.runtime.openai_api.messages import AddImage, runtime_messages
from qwen35web.runtime.openai_api.request import ChatRequest
from qwen35web.runtime.prompt import Prompt
from qwen35web.runtime.reasoning import Piece, ReasoningSplitter
from qwen35web.runtime.runtime import Runtime
from qwen35web.runtime.sampling import SamplingParams

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


def _refuse_unsupported(request: ChatRequest) -> None:
    """Fields this runtime cannot honour yet: one clear 400 rather than an answer that ignores them."""
    if request.tools or request.tool_choice not in (None, "none", "auto"):
        raise ApiError(f"'tools' {NOT_SUPPORTED} yet", param="tools", code="unsupported_parameter")
    if request.response_format is not None and request.response_format["type"] != "text":
        raise ApiError(
            f"'response_format' {request.response_format['type']!r} {NOT_SUPPORTED} yet",
            param="response_format",
            code="unsupported_parameter",
        )
    if request.logprobs:
        raise ApiError(f"'logprobs' {NOT_SUPPORTED} yet", param="logprobs", code="unsupported_parameter")


def _penalties(request: ChatRequest) -> dict[str, Any]:
    """presence/frequency penalties for SamplingParams, when this runtime's sampler has them."""
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
    }
    try:
        return SamplingParams(
            **with_bundle_defaults(user, generation),
            **_penalties(request),
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

    @classmethod
    def of(cls, result: GenerationResult) -> Usage:
        return cls(result.prompt_tokens, len(result.tokens), result.reused_tokens)

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
        self.prompt: Prompt | None = None
        self.params: SamplingParams | None = None
        self.result: GenerationResult | None = None  # after the generation
        self.text = ""
        self.reasoning = ""

    def prepare(self, add_image: AddImage | None = None) -> None:
        """Everything that can refuse the request, before any output: the model name, unsupported
        fields, images, the rendered prompt against the context, the sampling settings."""
        request, runtime = self.request, self.runtime
        check_model(request.model, self.model_id)
        _refuse_unsupported(request)
        params = sampling_params(request, runtime.manifest.generation, self.default_max_tokens)
        messages = runtime_messages(request.messages, add_image or runtime.add_image)
        try:
            prompt = runtime.prompt(messages=messages, enable_thinking=request.enable_thinking)
        except GenerationInputError as err:
            raise ApiError(str(err), param="messages") from None
        if len(prompt.ids) >= runtime.max_context:
            raise ApiError(
                f"this request's messages are {len(prompt.ids)} tokens; the model's context holds "
                f"{runtime.max_context} (with the reply): send fewer or shorter messages",
                param="messages",
                code="context_length_exceeded",
            )
        self.prompt, self.params = prompt, params

    async def pieces(self, cancel: CancelToken | None = None) -> AsyncIterator[Piece]:
        """The reply as it streams, split into reasoning and answer; `result` holds the totals after."""
        if self.prompt is None or self.params is None:
            self.prepare()
        prompt, params = self.prompt, self.params
        assert prompt is not None and params is not None
        splitter = ReasoningSplitter(prompt.opens_reasoning)
        stream = self.runtime.stream(prompt.ids, params, cancel, prompt.snapshot_at, prompt.images)
        async for text in stream:
            for piece in splitter.push(text):
                yield piece
        for piece in splitter.flush():
            yield piece
        self.text, self.reasoning = splitter.text, splitter.reasoning
        self.result = self.runtime.generator.result

    @property
    def finish_reason(self) -> str:
        assert self.result is not None
        return FINISH_REASONS.get(self.result.stop_reason, "stop")

    @property
    def usage(self) -> Usage:
        assert self.result is not None
        return Usage.of(self.result)

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model_id,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.request.include_usage:
            chunk["usage"] = None
        return chunk

    async def chunks(self, cancel: CancelToken | None = None) -> AsyncIterator[dict[str, Any]]:
        """The stream: the role, then one delta per piece (`content` or `reasoning_content`), then the
        finish reason; with stream_options.include_usage a last chunk with `usage` and no choices."""
        yield self.chunk({"role": "assistant", "content": ""})
        async for piece in self.pieces(cancel):
            field = "reasoning_content" if piece.kind == "reasoning" else "content"
            yield self.chunk({field: piece.text})
        yield self.chunk({}, self.finish_reason)
        if self.request.include_usage:
            last = self.chunk({})
            last["choices"], last["usage"] = [], self.usage.to_json()
            yield last

    async def response(self, cancel: CancelToken | None = None) -> dict[str, Any]:
        async for _ in self.pieces(cancel):
            pass
        message: dict[str, Any] = {"role": "assistant", "content": self.text, "refusal": None}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model_id,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
            ],
            "usage": self.usage.to_json(),
        }


def model_list(model_id: str, created: int) -> dict[str, Any]:
    """GET /v1/models: the one model this runtime serves."""
    return {"object": "list", "data": [model_object(model_id, created)]}


def model_object(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "qwen35web"}
