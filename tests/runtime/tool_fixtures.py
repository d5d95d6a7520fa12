"""Shared by the tool and constrained-sampling tests: a small tool-aware chat template (written
here, in the layout Qwen3.5's templates use), test tools, and a validator for the schema subset."""

from __future__ import annotations

from typing import Any

NL = "{{ '\\n' }}"  # the environment trims a newline right after a block tag: write it as an expression
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system" + NL + "You may call these tools:" + NL + "<tools>"
    "{% for tool in tools %}" + NL + "{{ tool | tojson }}{% endfor %}" + NL + "</tools>"
    "<|im_end|>" + NL + "{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}"
    + NL
    + "<tool_response>"
    + NL
    + "{{ message.content }}"
    + NL
    + "</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>" + NL + "{% endif %}"
    "{% elif message.role == 'assistant' %}<|im_start|>assistant" + NL + "{{ message.content | trim }}"
    "{% for call in message.tool_calls or [] %}"
    "{% if not loop.first or message.content | trim %}" + NL + NL + "{% endif %}"
    "<tool_call>" + NL + "<function={{ call.function.name }}>" + NL + ""
    "{% for key, value in call.function.arguments.items() %}<parameter={{ key }}>" + NL + ""
    "{% if value is string %}{{ value }}{% else %}{{ value | tojson }}{% endif %}"
    + NL
    + "</parameter>"
    + NL
    + "{% endfor %}</function>"
    + NL
    + "</tool_call>{% endfor %}<|im_end|>"
    + NL
    + "{% else %}<|im_start|>{{ message.role }}"
    + NL
    + "{{ message.content }}<|im_end|>"
    + NL
    + "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant"
    + NL
    + "{% if enable_thinking is defined and enable_thinking %}<think>"
    + NL
    + "{% endif %}{% endif %}"
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "units": {"enum": ["C", "F"]},
                "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
            },
            "required": ["city", "days"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
TOOLS = [WEATHER, CLOCK]

PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer"},
        "score": {"type": "number"},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1, "maxItems": 3},
        "pet": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"kind": {"const": "cat"}}}]},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def validate(value: Any, schema: dict[str, Any]) -> None:
    """Raise AssertionError where `value` breaks `schema` (the supported subset only)."""
    if "const" in schema:
        assert value == schema["const"]
    if "enum" in schema:
        assert value in schema["enum"]
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                validate(value, option)
                break
            except AssertionError as err:
                errors.append(err)
        else:
            raise AssertionError(f"no anyOf option fits {value!r}: {errors}")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        assert any(_type_ok(value, n) for n in names), f"{value!r} is not {names}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"missing {name}"
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name])
            else:
                assert schema.get("additionalProperties", True) is not False, f"extra key {name}"
    if isinstance(value, list):
        assert len(value) >= schema.get("minItems", 0)
        assert len(value) <= schema.get("maxItems", len(value))
        for item in value:
            validate(item, schema.get("items", {}))
    if isinstance(value, str):
        assert schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
