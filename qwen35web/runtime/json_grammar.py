"""JSON schemas (a documented subset) and tool calls as grammars for constrained sampling.

Supported schema keywords — anything else is refused with one clear error (SchemaError):
  type (a name or a list of them: object, array, string, number, integer, boolean, null),
  properties, required, additionalProperties (false, or absent/true: no other keys are written),
  items, minItems, maxItems, minLength, maxLength, enum, const, anyOf,
  and the annotations title, description, default, examples, $schema, $id.
A schema without `type`, `enum`, `const` or `anyOf` allows any JSON value.

The output is JSON that parses and validates; it is written in a canonical way: an object's
properties in the schema's order (optional ones may be left out), at most a little whitespace
between tokens, no other keys. `{"type": "json_object"}` allows any JSON object.

A forced tool call is the Qwen3-Coder XML form (tool_calls.py) with each parameter in the tool
schema's order: a string parameter is free text up to `</parameter>` (it cannot contain `</`,
which would end it early for a parser; its maxLength is not enforced there), an enum of strings
is one of them, anything else is compact JSON of its schema.
"""

from __future__ import annotations

import json
from typing import Any

from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.grammar import Node, Ref, alt, byte_class, byte_range, lit, opt, rep, seq, until

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id"}
_SUPPORTED = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "const",
    "anyOf",
} | _ANNOTATIONS
MAX_WHITESPACE = 12  # between two tokens: enough for pretty-printing, not for endless blanks


class SchemaError(GenerationInputError):
    """A schema outside the supported subset (or not a schema)."""


def _json_text(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class JsonGrammar:
    """Grammar nodes for JSON values; one instance per constrained reply."""

    def __init__(self) -> None:
        self.ws = rep(byte_class(b" \t\n\r"), 0, MAX_WHITESPACE)
        digit = byte_range(0x30, 0x39)
        self.digits = rep(digit, 1)
        integer_part = alt(lit("0"), seq(byte_range(0x31, 0x39), rep(digit)))
        self.integer = seq(opt(lit("-")), integer_part)
        fraction = seq(lit("."), self.digits)
        exponent = seq(byte_class(b"eE"), opt(byte_class(b"+-")), self.digits)
        self.number = seq(self.integer, opt(fraction), opt(exponent))
        self.char = self._string_char()
        self.boolean = alt(lit("true"), lit("false"))
        self.null = lit("null")
        self._any: Ref | None = None

    def _string_char(self) -> Node:
        plain = byte_class(b for b in range(0x20, 0x80) if b not in b'"\\')
        hexdigit = byte_class(b"0123456789abcdefABCDEF")
        escape = seq(
            lit("\\"), alt(byte_class(b'"\\/bfnrt'), seq(lit("u"), hexdigit, hexdigit, hexdigit, hexdigit))
        )
        tail = byte_range(0x80, 0xBF)
        utf8 = alt(  # well-formed UTF-8 only (RFC 3629 table)
            seq(byte_range(0xC2, 0xDF), tail),
            seq(lit(b"\xe0"), byte_range(0xA0, 0xBF), tail),
            seq(byte_class([*range(0xE1, 0xED), 0xEE, 0xEF]), tail, tail),
            seq(lit(b"\xed"), byte_range(0x80, 0x9F), tail),
            seq(lit(b"\xf0"), byte_range(0x90, 0xBF), tail, tail),
            seq(byte_range(0xF1, 0xF3), tail, tail, tail),
            seq(lit(b"\xf4"), byte_range(0x80, 0x8F), tail, tail),
        )
        return alt(plain, escape, utf8)

    def string(self, least: int = 0, most: int | None = None) -> Node:
        return seq(lit('"'), rep(self.char, least, most), lit('"'))

    def any_value(self) -> Node:
        if self._any is None:
            value = self._any = Ref()
            member = seq(self.string(), self.ws, lit(":"), self.ws, value)
            comma = seq(self.ws, lit(","), self.ws)
            obj = seq(lit("{"), self.ws, opt(rep(member, 1, None, comma)), self.ws, lit("}"))
            array = seq(lit("["), self.ws, opt(rep(value, 1, None, comma)), self.ws, lit("]"))
            value.a = alt(obj, array, self.string(), self.number, self.boolean, self.null)
        return self._any

    def any_object(self) -> Node:
        self.any_value()
        assert self._any is not None
        return self._any.a.a[0]

    def schema(self, schema: Any, where: str = "schema") -> Node:
        if not isinstance(schema, dict):
            raise SchemaError(f"{where} must be a JSON object")
        unknown = sorted(set(schema) - _SUPPORTED)
        if unknown:
            raise SchemaError(f"{where}: the keyword {unknown[0]!r} is not supported (see docs/tools.md)")
        if "const" in schema:
            return lit(_json_text(schema["const"]))
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise SchemaError(f"{where}.enum must be a non-empty list")
            return alt(*(lit(_json_text(v)) for v in values))
        if "anyOf" in schema:
            options = schema["anyOf"]
            if not isinstance(options, list) or not options:
                raise SchemaError(f"{where}.anyOf must be a non-empty list")
            return alt(*(self.schema(o, f"{where}.anyOf[{i}]") for i, o in enumerate(options)))
        types = schema.get("type")
        if types is None:
            return self.any_value()
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list) or not names or any(t not in TYPES for t in names):
            raise SchemaError(f"{where}.type must be one of {', '.join(TYPES)} (or a list of them)")
        return alt(*(self._typed(name, schema, where) for name in names))

    def _typed(self, name: str, schema: dict[str, Any], where: str) -> Node:
        if name == "object":
            return self._object(schema, where)
        if name == "array":
            least, most = _bounds(schema, "minItems", "maxItems", where)
            item = self.schema(schema.get("items", {}), f"{where}.items")
            comma = seq(self.ws, lit(","), self.ws)
            items = rep(item, least, most, comma) if least else opt(rep(item, 1, most, comma))
            return seq(lit("["), self.ws, items, self.ws, lit("]"))
        if name == "string":
            return self.string(*_bounds(schema, "minLength", "maxLength", where))
        return {"number": self.number, "integer": self.integer, "boolean": self.boolean, "null": self.null}[
            name
        ]

    def _object(self, schema: dict[str, Any], where: str) -> Node:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(properties, dict) or not isinstance(required, list):
            raise SchemaError(f"{where}: properties must be an object and required a list")
        missing = [name for name in required if name not in properties]
        if missing:
            raise SchemaError(f"{where}: required property {missing[0]!r} is not among the properties")
        if not properties and schema.get("additionalProperties", True) is not False:
            return self.any_object()
        members = [
            (
                seq(
                    self.ws,
                    lit(_json_text(key)),
                    self.ws,
                    lit(":"),
                    self.ws,
                    self.schema(sub, f"{where}.{key}"),
                ),
                key in required,
            )
            for key, sub in properties.items()
        ]
        comma = seq(self.ws, lit(","))
        return seq(lit("{"), _members(members, comma), self.ws, lit("}"))


def _members(members: list[tuple[Node, bool]], separator: Node) -> Node:
    """Members in order, optional ones skippable, `separator` between the ones written."""
    after: dict[tuple[int, bool], Node] = {}
    for index in range(len(members), -1, -1):
        for first in (True, False):
            if index == len(members):
                after[index, first] = seq()
                continue
            member, needed = members[index]
            written = (
                seq(member, after[index + 1, False])
                if first
                else seq(separator, member, after[index + 1, False])
            )
            after[index, first] = written if needed else alt(written, after[index + 1, first])
    return after[0, True]


def _bounds(schema: dict[str, Any], low: str, high: str, where: str) -> tuple[int, int | None]:
    least, most = schema.get(low, 0), schema.get(high)
    if (
        not isinstance(least, int)
        or least < 0
        or (most is not None and (not isinstance(most, int) or most < least))
    ):
        raise SchemaError(f"{where}: {low}/{high} must be integers with {low} <= {high}")
    return least, most


def response_format_grammar(response_format: Any) -> Node | None:
    """OpenAI's response_format as a grammar; None for {"type": "text"} or no format."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    grammar = JsonGrammar()
    if kind == "json_object":
        return grammar.any_object()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise SchemaError("response_format json_schema needs {'json_schema': {'schema': {...}}}")
        return grammar.schema(spec["schema"])
    raise SchemaError("response_format type must be 'text', 'json_object' or 'json_schema'")


def _bytes_except(*excluded: str) -> Node:
    return byte_class(b for b in range(256) if chr(b) not in excluded)


def _free_string_value() -> Node:
    """A string parameter's text, through the "</" that closes it (no "</" inside: it would end the
    value). The opening tag's newline is layout, so the text may not start with another one: the
    parser would keep that one, and the value would gain a leading "\n"."""
    return alt(
        lit("</"),  # the empty string
        seq(_bytes_except("\n", "<"), until(b"</")),
        seq(lit("<"), _bytes_except("/", "<"), until(b"</")),  # a "<" that opens no "</"
    )


def tool_call_grammar(name: str, parameters: dict[str, Any]) -> Node:
    """One forced call of `name` in Qwen's XML form, its arguments valid for `parameters`."""
    grammar = JsonGrammar()
    properties = parameters.get("properties", {})
    required = parameters.get("required", [])
    members = []
    for key, sub in properties.items():
        where = f"tool {name!r} parameter {key!r}"
        opening = lit(f"<parameter={key}>\n")
        types = sub.get("type") if isinstance(sub, dict) else None
        string_enum = isinstance(sub, dict) and all(isinstance(v, str) for v in sub.get("enum", [0]))
        if string_enum:
            value = seq(alt(*(lit(v) for v in sub["enum"])), lit("\n</parameter>\n"))
        elif types == "string" or (isinstance(types, list) and "string" in types):
            grammar.schema(sub, where)  # still refuse keywords outside the subset
            value = seq(_free_string_value(), lit("parameter>\n"))
        else:
            value = seq(grammar.schema(sub, where), lit("\n</parameter>\n"))
        members.append((seq(opening, value), key in required))
    body = _members(members, seq())
    return seq(lit(f"<tool_call>\n<function={name}>\n"), body, lit("</function>\n</tool_call>"))
