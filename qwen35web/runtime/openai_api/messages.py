"""OpenAI chat messages: checked as sent, then turned into the messages the chat template renders.

OpenAI's shapes: `content` is a string or a list of parts (`{"type": "text", "text"}`, and in user
messages `{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`); an assistant
message may carry `tool_calls` (arguments as a JSON string) and, as local servers send it back,
`reasoning_content`; a `tool` message answers a call. The template's shapes (transformers'
convention): text-only content as one string, images as `{"type": "image", "image_id"}` parts naming
an image registered with the runtime, tool-call arguments as an object, `developer` as `system`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from qwen35web.runtime.chat import Message
from qwen35web.runtime.errors import RuntimeUserError
from qwen35web.runtime.openai_api.errors import ApiError
from qwen35web.runtime.vision.prompt import IMAGE_PART

ROLES = ("system", "developer", "user", "assistant", "tool")
TEXT_PART, IMAGE_URL_PART = "text", "image_url"

# Registers an image's file bytes with the runtime; returns the id messages name it by.
AddImage = Callable[[bytes], str]


def _check_parts(parts: list[Any], where: str, images_allowed: bool) -> None:
    for j, part in enumerate(parts):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == TEXT_PART and isinstance(part.get("text"), str):
            continue
        if kind == IMAGE_URL_PART and images_allowed:
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            if not isinstance(url, str):
                raise ApiError(f"{at}.image_url must be {{'url': 'data:image/...;base64,...'}}", param=at)
            continue
        allowed = "text and image_url" if images_allowed else "text"
        raise ApiError(f"{at} must be a content part of type {allowed}", param=at, code="invalid_value")


def _check_tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise ApiError(f"{where}.tool_calls must be a list", param=f"{where}.tool_calls")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ApiError(
                f"{at} must be {{'type': 'function', 'function': {{'name', 'arguments'}}}}", param=at
            )
        arguments = function.get("arguments", "{}")
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ApiError(f"{at}.function.arguments must be a JSON object in a string", param=at)


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise ApiError(f"{where} must be an object with a 'role'", param=where, code="invalid_type")
    role = message.get("role")
    if role not in ROLES:
        raise ApiError(
            f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}",
            param=f"{where}.role",
            code="invalid_value",
        )
    content = message.get("content")
    if content is None and not (role == "assistant" and message.get("tool_calls")):
        raise ApiError(f"{where}.content is required", param=f"{where}.content")
    if isinstance(content, list):
        _check_parts(content, where, images_allowed=role == "user")
    elif content is not None and not isinstance(content, str):
        raise ApiError(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    reasoning = message.get("reasoning_content")
    if reasoning is not None and not isinstance(reasoning, str):
        raise ApiError(f"{where}.reasoning_content must be a string", param=f"{where}.reasoning_content")
    if message.get("tool_calls") is not None:
        if role != "assistant":
            raise ApiError(f"{where}: only assistant messages carry tool_calls", param=f"{where}.tool_calls")
        _check_tool_calls(message["tool_calls"], where)


def check_messages(value: Any) -> list[dict[str, Any]]:
    """The messages as sent, each checked; ApiError names the first bad one."""
    if not isinstance(value, list) or not value:
        raise ApiError("'messages' must be a non-empty list", param="messages")
    for i, message in enumerate(value):
        _check_message(message, f"messages[{i}]")
    return value


def image_bytes(url: str, where: str) -> bytes:
    """The bytes of a base64 data URL (`data:image/png;base64,...`); nothing is ever fetched."""
    if not url.startswith("data:"):
        raise ApiError(f"{where}: images must be data: URLs (this server fetches nothing)", param=where)
    header, comma, data = url[len("data:") :].partition(",")
    media_type = header.split(";")[0]
    if not comma or not header.endswith(";base64"):
        raise ApiError(f"{where}: the data URL must be base64 (data:image/...;base64,...)", param=where)
    if media_type and not media_type.startswith("image/"):
        raise ApiError(f"{where} is {media_type}, not an image", param=where, code="invalid_image")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            f"{where}: the data URL is not valid base64", param=where, code="invalid_image"
        ) from None


def _content(content: Any, where: str, add_image: AddImage) -> Any:
    if not isinstance(content, list):
        return content or ""
    if all(part["type"] == TEXT_PART for part in content):
        return "\n".join(part["text"] for part in content)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if part["type"] == TEXT_PART:
            parts.append({"type": "text", "text": part["text"]})
            continue
        at = f"{where}.content[{j}]"
        image_url = part["image_url"]
        url = image_url["url"] if isinstance(image_url, dict) else image_url
        try:
            image_id = add_image(image_bytes(url, at))
        except RuntimeUserError as err:  # not an image, or a text-only bundle
            raise ApiError(f"{at}: {err}", param=at, code="invalid_image") from None
        parts.append({"type": IMAGE_PART, "image_id": image_id})
    return parts


def _tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's calls with their arguments parsed: templates iterate over them as an object."""
    return [
        {
            "type": "function",
            "id": call.get("id", ""),
            "function": {
                "name": call["function"]["name"],
                "arguments": json.loads(call["function"].get("arguments", "{}")),
            },
        }
        for call in calls
    ]


def runtime_messages(messages: list[dict[str, Any]], add_image: AddImage) -> list[Message]:
    """Checked OpenAI messages -> the template's messages (images registered through `add_image`)."""
    out: list[Message] = []
    for i, message in enumerate(messages):
        role = "system" if message["role"] == "developer" else message["role"]
        converted: Message = {
            "role": role,
            "content": _content(message.get("content"), f"messages[{i}]", add_image),
        }
        if message.get("reasoning_content"):
            converted["reasoning_content"] = message["reasoning_content"]
        if message.get("tool_calls"):
            converted["tool_calls"] = _tool_calls(message["tool_calls"])
        if role == "tool" and isinstance(message.get("tool_call_id"), str):
            converted["tool_call_id"] = message["tool_call_id"]
        if isinstance(message.get("name"), str):
            converted["name"] = message["name"]
        out.append(converted)
    return out
