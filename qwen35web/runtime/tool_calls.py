"""The model's tool calls (Qwen3-Coder XML), parsed while the reply streams.

Qwen3.5 writes a call as

    <tool_call>
    <function=NAME>
    <parameter=ARG>
    VALUE
    </parameter>
    </function>
    </tool_call>

several in a row, after optional text (the message's content). A value is verbatim text (it may
span lines; one newline after the opening and before the closing tag belongs to the layout); the
tool's JSON schema says what it means: integers and numbers, booleans (`true`, also `True`), null,
JSON objects and arrays (also Python's literal form, which small models sometimes write), or a
string as written. `ToolCallParser` takes the answer text in pieces and gives back the content
(holding back whatever may still become `<tool_call>`, so a call's markup is never shown) and each
call once its `</tool_call>` has arrived. A call that cannot be read, or names an unknown tool, is
still returned: with its raw text and an `error` saying what is wrong (nothing is dropped).
"""

from __future__ import annotations

import ast
import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qwen35web.runtime.tools import Tool, tool_parameters

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_FUNCTION = re.compile(r"\s*<function=([^>\n]+)>")
_PARAMETER = re.compile(r"\s*<parameter=([^>\n]+)>")
_PARAMETER_CLOSE = "</parameter>"
_FUNCTION_CLOSE = "</function>"


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw: str = ""  # the call's text as the model wrote it, tags included
    error: str | None = None  # None: a well-formed call of a known tool, arguments as its schema says

    def for_template(self) -> dict[str, Any]:
        """The call as an assistant message's `tool_calls` entry (arguments as a mapping)."""
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's shape: arguments as a JSON string."""
        arguments = json.dumps(self.arguments, ensure_ascii=False)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
            "raw": self.raw,
            "error": self.error,
        }


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ToolCallParser:
    """Feed the answer text with `push`; it returns (content text, finished calls)."""

    def __init__(self, tools: list[Tool], make_id: Callable[[], str] = new_call_id):
        self.tools = tools
        self.make_id = make_id
        self.pending = ""  # text held: a possible start of <tool_call>, or a call not yet closed
        self.in_call = False
        self.content = ""
        self.calls: list[ToolCall] = []

    def push(self, text: str) -> tuple[str, list[ToolCall]]:
        self.pending += text
        shown, calls = "", []
        while self.pending:
            if self.in_call:
                end = self.pending.find(CALL_CLOSE)
                if end < 0:
                    break
                raw = CALL_OPEN + self.pending[: end + len(CALL_CLOSE)]
                self.pending = self.pending[end + len(CALL_CLOSE) :]
                self.in_call = False
                calls.append(self._finish(raw))
                continue
            start = self.pending.find(CALL_OPEN)
            if start >= 0:
                before = self.pending[:start]
                # The whitespace between the content (or a call) and a call is layout, not content.
                shown += before.rstrip()
                self.pending = self.pending[start + len(CALL_OPEN) :]
                self.in_call = True
                continue
            held = _partial_suffix(self.pending, CALL_OPEN)
            body = self.pending[: len(self.pending) - held]
            # Trailing whitespace may precede a call: hold it until something else follows.
            visible = body.rstrip()
            shown += visible
            self.pending = self.pending[len(visible) :]
            break
        return self._show(shown), calls

    def _show(self, text: str) -> str:
        if self.calls and not text.strip():
            return ""
        self.content += text
        return text

    def _finish(self, raw: str) -> ToolCall:
        call = parse_call(raw, self.tools, self.make_id())
        self.calls.append(call)
        return call

    def flush(self) -> tuple[str, list[ToolCall]]:
        """The end of the reply: an unclosed call is returned as a malformed one; held text is shown."""
        rest, self.pending = self.pending, ""
        if self.in_call:
            self.in_call = False
            call = parse_call(CALL_OPEN + rest, self.tools, self.make_id())
            problems = ["the call was not closed with </tool_call>", *([call.error] if call.error else [])]
            call.error = "; ".join(problems)
            self.calls.append(call)
            return "", [call]
        return self._show(rest), []


def parse_call(raw: str, tools: list[Tool], call_id: str) -> ToolCall:
    """One `<tool_call>…</tool_call>` block (the closing tag may be missing) as a ToolCall."""
    body = raw[len(CALL_OPEN) :]
    if body.endswith(CALL_CLOSE):
        body = body[: -len(CALL_CLOSE)]
    head = _FUNCTION.match(body)
    if head is None:
        return ToolCall(call_id, "", {}, raw, "no <function=NAME> in the call")
    name = head.group(1).strip()
    values, problems = _parameters(body[head.end() :])
    schema = tool_parameters(tools, name)
    if schema is None:
        problems.insert(0, f"unknown tool {name!r}")
        arguments: dict[str, Any] = dict(values)
    else:
        arguments = _typed(values, schema, problems)
    return ToolCall(call_id, name, arguments, raw, "; ".join(problems) or None)


def _parameters(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The (name, raw value) pairs of a function's body, and what is wrong with its markup."""
    values: list[tuple[str, str]] = []
    problems: list[str] = []
    position = 0
    while True:
        opening = _PARAMETER.match(text, position)
        if opening is None:
            break
        end = text.find(_PARAMETER_CLOSE, opening.end())
        if end < 0:
            problems.append(f"parameter {opening.group(1).strip()!r} is not closed with </parameter>")
            return values, problems
        value = text[opening.end() : end]
        value = value[1:] if value.startswith("\n") else value
        value = value[:-1] if value.endswith("\n") else value
        values.append((opening.group(1).strip(), value))
        position = end + len(_PARAMETER_CLOSE)
    rest = text[position:].strip()
    if not rest.startswith(_FUNCTION_CLOSE):
        problems.append("the function is not closed with </function>")
    elif rest[len(_FUNCTION_CLOSE) :].strip():
        problems.append("unexpected text after </function>")
    return values, problems


def _typed(values: list[tuple[str, str]], schema: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    properties = schema.get("properties", {})
    arguments: dict[str, Any] = {}
    for name, raw in values:
        if name in arguments:
            problems.append(f"argument {name!r} is given twice")
        prop = properties.get(name)
        if prop is None:
            if schema.get("additionalProperties") is False:
                problems.append(f"unknown argument {name!r}")
            arguments[name] = raw
            continue
        try:
            arguments[name] = convert_value(raw, prop)
        except ValueError as err:
            problems.append(f"argument {name!r}: {err}")
            arguments[name] = raw
    for name in schema.get("required", []):
        if name not in arguments:
            problems.append(f"missing required argument {name!r}")
    return arguments


def _types_of(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    options = schema.get("anyOf") or schema.get("oneOf") or []
    found = [t for option in options if isinstance(option, dict) for t in _types_of(option)]
    if "enum" in schema or "const" in schema:
        found += sorted({_json_type(v) for v in [*schema.get("enum", []), schema.get("const")]} - {"null"})
    return found or ["string"]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    names: dict[type, str] = {str: "string", dict: "object", list: "array"}
    return names.get(type(value), "null")


def convert_value(raw: str, schema: dict[str, Any]) -> Any:
    """`raw` as the schema's type; ValueError when it is none of the types the schema allows.
    A string type takes the text verbatim, so it is tried last."""
    types = _types_of(schema)
    for kind in sorted(types, key=lambda t: t == "string"):
        converted = _CONVERTERS.get(kind, _as_string)(raw)
        if converted is not _NO:
            return converted
    raise ValueError(f"expected {' or '.join(types)}, got {raw.strip()[:40]!r}")


_NO = object()


def _as_string(raw: str) -> Any:
    return raw


def _as_integer(raw: str) -> Any:
    value = _as_number(raw)
    if value is _NO or isinstance(value, bool):
        return _NO
    if isinstance(value, float):
        return int(value) if value.is_integer() else _NO
    return value


def _as_number(raw: str) -> Any:
    try:
        value = json.loads(raw.strip())
    except json.JSONDecodeError:
        return _NO
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return _NO
    return value


def _as_boolean(raw: str) -> Any:
    return {"true": True, "false": False}.get(raw.strip().lower(), _NO)


def _as_null(raw: str) -> Any:
    return None if raw.strip() in ("null", "None") else _NO


def _container(raw: str, kind: type) -> Any:
    text = raw.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:  # Python's literal form: {'a': True, 'b': None}
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return _NO
    return value if isinstance(value, kind) else _NO


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "string": _as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "null": _as_null,
    "object": lambda raw: _container(raw, dict),
    "array": lambda raw: _container(raw, list),
}
