"""Tools (OpenAI function schemas), `tool_choice`, and the messages that carry calls and results.

A tool is `{"type": "function", "function": {"name", "description", "parameters"}}` with
`parameters` a JSON-schema object. The chat template receives the tools as they are (Qwen's
templates list them as JSON lines in a system turn). Assistant messages carry `tool_calls`
(`[{"id", "type": "function", "function": {"name", "arguments"}}]`): OpenAI clients send the
arguments as a JSON string, Qwen's templates read them as a mapping (`arguments|items`), so
`normalize_messages` turns the string into a dict. A `tool` message (`role: "tool"`, `content`,
`tool_call_id`) carries a result back; the template renders it (Qwen: `<tool_response>` blocks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from qwen35web.runtime.errors import GenerationInputError

Tool = dict[str, Any]
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolChoice:
    """What the reply may or must do: "auto" (call or answer), "none" (answer; the tools are still
    shown), "required" (at least one call of any tool), or `name` (a call of that tool)."""

    mode: str = "auto"
    name: str | None = None

    @property
    def forced(self) -> bool:
        return self.mode in ("required", "function")


def check_tools(tools: Any) -> list[Tool]:
    """The tools as given, checked: a list of function tools with distinct names and object schemas."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise GenerationInputError("tools must be a list of {'type': 'function', 'function': {...}}")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        is_function = isinstance(tool, dict) and tool.get("type", "function") == "function"
        if not is_function or not isinstance(function, dict):
            raise GenerationInputError(f"tools[{index}] must be {{'type': 'function', 'function': {{...}}}}")
        name = function.get("name")
        if not isinstance(name, str) or not name or any(c in name for c in "<>\n "):
            raise GenerationInputError(f"tools[{index}] needs a 'name' without spaces or '<', '>'")
        if name in names:
            raise GenerationInputError(f"tools[{index}]: the tool name {name!r} appears twice")
        names.add(name)
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise GenerationInputError(f"tool {name!r}: 'parameters' must be a JSON schema of type object")
        if not isinstance(parameters.get("properties", {}), dict):
            raise GenerationInputError(f"tool {name!r}: 'parameters.properties' must be an object")
    return tools


def tool_parameters(tools: list[Tool], name: str) -> dict[str, Any] | None:
    """The parameters schema of the tool called `name`, or None when there is no such tool."""
    for tool in tools:
        if tool["function"]["name"] == name:
            return tool["function"].get("parameters", {"type": "object", "properties": {}})
    return None


def parse_tool_choice(choice: Any, tools: list[Tool]) -> ToolChoice:
    """OpenAI's `tool_choice`: None/"auto", "none", "required", or {"type": "function", "function":
    {"name": ...}} naming one of `tools`."""
    if choice is None or choice == "auto":
        return ToolChoice("auto")
    if choice == "none":
        return ToolChoice("none")
    if choice == "required":
        if not tools:
            raise GenerationInputError("tool_choice 'required' needs tools")
        return ToolChoice("required")
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise GenerationInputError(
            "tool_choice must be 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}"
        )
    if tool_parameters(tools, name) is None:
        raise GenerationInputError(f"tool_choice names {name!r}, which is not among the tools")
    return ToolChoice("function", name)


def _call_for_template(index: int, call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise GenerationInputError(f"tool_calls[{index}] needs function.name")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise GenerationInputError(f"tool_calls[{index}]: arguments are not valid JSON") from None
    if not isinstance(arguments, dict):
        raise GenerationInputError(f"tool_calls[{index}]: arguments must be a JSON object")
    return {
        "id": call.get("id", ""),
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """Messages as the template reads them: roles checked, calls' arguments as dicts, `None`
    content (an assistant message with only calls) as ""."""
    if not isinstance(messages, list) or not messages:
        raise GenerationInputError("messages must be a non-empty list")
    normalized = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise GenerationInputError(f"messages[{index}]: the role must be one of {', '.join(ROLES)}")
        message = dict(message)
        if message.get("content") is None:
            message["content"] = ""
        calls = message.get("tool_calls")
        if calls is not None:
            if message["role"] != "assistant" or not isinstance(calls, list):
                raise GenerationInputError(
                    f"messages[{index}]: only an assistant message has a tool_calls list"
                )
            message["tool_calls"] = [_call_for_template(i, call) for i, call in enumerate(calls)]
        normalized.append(message)
    return normalized
