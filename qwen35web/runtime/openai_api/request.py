"""A chat-completions request body, checked field by field into a `ChatRequest`.

Every refusal is an `ApiError` naming the parameter, as OpenAI's API does. Fields OpenAI defines that
this runtime has no use for (`user`, `store`, `metadata`, `parallel_tool_calls`, ...) are ignored;
fields it cannot honour are refused rather than silently dropped. Extensions other local servers
accept too: `top_k`, `min_tokens`, `repetition_penalty`, `chat_template_kwargs.enable_thinking`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from qwen35web.runtime.openai_api.errors import ApiError
from qwen35web.runtime.openai_api.messages import check_messages

TOOL_CHOICES = ("none", "auto", "required")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]  # as sent, checked (messages.check_messages)
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk carries `usage`
    temperature: float | None = None  # None: the bundle's default; 0: greedy
    top_p: float | None = None
    top_k: int | None = None
    min_tokens: int = 0
    max_tokens: int | None = None  # max_completion_tokens, else max_tokens; None: the server's default
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None  # None: the bundle's default (when the sampler has one)
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None  # "none" | "auto" | "required" | {"type": "function", "function": {"name"}}
    response_format: dict[str, Any] | None = None
    enable_thinking: bool | None = None  # chat_template_kwargs.enable_thinking; None: the template's


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(f"'{name}' must be a number", param=name, code="invalid_type")
    if not low <= value <= high:
        raise ApiError(f"'{name}' must be between {low:g} and {high:g}, got {value}", param=name)
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"'{name}' must be an integer", param=name, code="invalid_type")
    if low is not None and value < low:
        raise ApiError(f"'{name}' must be at least {low}, got {value}", param=name)
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(f"'{name}' must be true or false", param=name, code="invalid_type")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise ApiError("'stop' must be a non-empty string or a list of them", param="stop")
    return tuple(stops)


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError("'tools' must be a list of function tools", param="tools", code="invalid_type")
    names: set[str] = set()
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise ApiError(f"{where} must be {{'type': 'function', 'function': {{...}}}}", param=where)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(
                f"{where}.function.name must be a non-empty string", param=f"{where}.function.name"
            )
        if name in names:
            raise ApiError(f"two tools are named {name!r}", param=f"{where}.function.name")
        names.add(name)
        parameters = function.get("parameters", {})
        if not isinstance(parameters, dict):
            raise ApiError(
                f"{where}.function.parameters must be a JSON Schema object, got {type(parameters).__name__}",
                param=f"{where}.function.parameters",
            )
    return value


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> Any:
    if value is None:
        return None
    names = [tool["function"]["name"] for tool in tools]
    if isinstance(value, str):
        if value not in TOOL_CHOICES:
            raise ApiError(
                f"'tool_choice' must be one of {', '.join(TOOL_CHOICES)} or a function", param="tool_choice"
            )
        if value == "required" and not tools:
            raise ApiError("'tool_choice' is 'required' but no tools were given", param="tool_choice")
        return value
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise ApiError(
            "'tool_choice' must name a function as {'type': 'function', 'function': {'name': NAME}}",
            param="tool_choice",
        )
    if name not in names:
        raise ApiError(f"'tool_choice' names {name!r}, which is not among the tools", param="tool_choice")
    return value


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in RESPONSE_FORMATS:
        raise ApiError(
            f"'response_format' must be an object whose type is one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
        )
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema", {}) if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise ApiError(
                "'response_format.json_schema' must be an object with a 'schema' object",
                param="response_format.json_schema",
            )
    return value


def _enable_thinking(value: Any) -> bool | None:
    if value is None:
        return None
    thinking = value.get("enable_thinking") if isinstance(value, dict) else value
    if not isinstance(value, dict) or not (thinking is None or isinstance(thinking, bool)):
        raise ApiError(
            "'chat_template_kwargs' must be an object; its 'enable_thinking' true or false",
            param="chat_template_kwargs",
        )
    return thinking


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError("'model' is required: the name GET /v1/models lists", param="model")
    return model


def parse_chat_request(body: Any) -> ChatRequest:
    """The request's fields, checked; ApiError (400) names the first bad one."""
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object", code="invalid_json")
    model = _model(body)
    if "messages" not in body:
        raise ApiError("'messages' is required", param="messages", code="missing_required_parameter")
    messages = check_messages(body["messages"])
    n = _integer(body, "n", low=1)
    if n not in (None, 1):
        raise ApiError(f"'n' must be 1: this server generates one choice per request, got {n}", param="n")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError("'stream_options' must be an object", param="stream_options")
    max_tokens = _integer(body, "max_completion_tokens", low=1)
    tools = _tools(body.get("tools"))
    request = ChatRequest(
        model=model,
        messages=messages,
        stream=_flag(body, "stream"),
        include_usage=_flag(options or {}, "include_usage"),
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        top_k=_integer(body, "top_k", low=0),
        min_tokens=_integer(body, "min_tokens", low=0) or 0,
        max_tokens=max_tokens if max_tokens is not None else _integer(body, "max_tokens", low=1),
        stop=_stop(body.get("stop")),
        seed=_integer(body, "seed"),
        presence_penalty=_number(body, "presence_penalty", -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", -2.0, 2.0),
        repetition_penalty=_number(body, "repetition_penalty", 0.0, math.inf),
        logprobs=_flag(body, "logprobs"),
        top_logprobs=_integer(body, "top_logprobs", low=0),
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        response_format=_response_format(body.get("response_format")),
        enable_thinking=_enable_thinking(body.get("chat_template_kwargs")),
    )
    if request.top_logprobs is not None and (request.top_logprobs > 20 or not request.logprobs):
        raise ApiError("'top_logprobs' must be 0..20 and needs 'logprobs': true", param="top_logprobs")
    return request
