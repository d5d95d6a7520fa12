"""The tool-call parser's table: Qwen3-Coder XML calls, whole and streamed split at every character,
typed by the tools' schemas; malformed and unknown calls come back with an error, never dropped."""

from __future__ import annotations

from typing import Any

import pytest

from qwen35web.runtime.reasoning import ReasoningSplitter
from qwen35web.runtime.tool_calls import ToolCallParser
from qwen35web.runtime.turn import split_calls

TOOLS: list[dict[str, Any]] = [
    {
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
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "configure",
            "parameters": {
                "type": "object",
                "properties": {
                    "config": {"type": "object"},
                    "tags": {"type": "array"},
                    "ratio": {"type": "number"},
                    "note": {"type": ["string", "null"]},
                },
            },
        },
    },
]


def call(name: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


# (id, reply text, opens reasoning, content, reasoning, [(name, arguments, error part or None)])
CASES = [
    (
        "issue-form",
        call("get_weather", city="Paris"),
        False,
        "",
        "",
        [("get_weather", {"city": "Paris"}, None)],
    ),
    (
        "typed",
        call("get_weather", city="Paris", days="3", metric="true", units="C"),
        False,
        "",
        "",
        [("get_weather", {"city": "Paris", "days": 3, "metric": True, "units": "C"}, None)],
    ),
    (
        "python-booleans",
        call("get_weather", city="Oslo", metric="False"),
        False,
        "",
        "",
        [("get_weather", {"city": "Oslo", "metric": False}, None)],
    ),
    (
        "multi-line-string",
        call("get_weather", city="New\n  York\n\n<b>"),
        False,
        "",
        "",
        [("get_weather", {"city": "New\n  York\n\n<b>"}, None)],
    ),
    (
        "json-object-array",
        call("configure", config='{"a": [1, {"b": null}]}', tags='["x", 2]', ratio="0.5", note="null"),
        False,
        "",
        "",
        [
            (
                "configure",
                {"config": {"a": [1, {"b": None}]}, "tags": ["x", 2], "ratio": 0.5, "note": None},
                None,
            )
        ],
    ),
    (
        "python-literal-object",
        call("configure", config="{'on': True, 'off': None}"),
        False,
        "",
        "",
        [("configure", {"config": {"on": True, "off": None}}, None)],
    ),
    (
        "content-then-calls",
        "Let me check.\n\n" + call("get_weather", city="Rome") + "\n" + call("configure", ratio="2"),
        False,
        "Let me check.",
        "",
        [("get_weather", {"city": "Rome"}, None), ("configure", {"ratio": 2}, None)],
    ),
    (
        "reasoning-before",
        "I should call it.\n</think>\n\n" + call("get_weather", city="Lima"),
        True,
        "",
        "I should call it.",
        [("get_weather", {"city": "Lima"}, None)],
    ),
    (
        "unknown-tool",
        call("launch_rocket", target="moon"),
        False,
        "",
        "",
        [("launch_rocket", {"target": "moon"}, "unknown tool 'launch_rocket'")],
    ),
    (
        "missing-parameter",
        call("get_weather", days="2"),
        False,
        "",
        "",
        [("get_weather", {"days": 2}, "missing required argument 'city'")],
    ),
    (
        "wrong-type",
        call("get_weather", city="Bern", days="soon"),
        False,
        "",
        "",
        [("get_weather", {"city": "Bern", "days": "soon"}, "argument 'days': expected integer")],
    ),
    (
        "no-function-tag",
        "<tool_call>\nget_weather(city='x')\n</tool_call>",
        False,
        "",
        "",
        [("", {}, "no <function")],
    ),
    (
        "unclosed-parameter",
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>",
        False,
        "",
        "",
        [("get_weather", {}, "not closed with </parameter>")],
    ),
    (
        "unclosed-call",
        "Sure " + call("get_weather", city="Kyiv")[: -len("</tool_call>")],
        False,
        "Sure",
        "",
        [("get_weather", {"city": "Kyiv"}, "not closed with </tool_call>")],
    ),
    ("no-call", "Just text, a < b and <tool", False, "Just text, a < b and <tool", "", []),
    (
        "text-after-calls",
        call("get_weather", city="Quito") + "\nDone.",
        False,
        "\nDone.",
        "",
        [("get_weather", {"city": "Quito"}, None)],
    ),
]


def run(pieces: list[str], opens_reasoning: bool):
    splitter = ReasoningSplitter(opens_reasoning)
    parser = ToolCallParser(TOOLS, make_id=lambda: "call_0")
    shown = []
    for text in pieces:
        shown += split_calls(splitter.push(text), parser)
    shown += split_calls(splitter.flush(), parser, final=True)
    return splitter, parser, shown


def check(case, pieces):
    _, text, opens, content, reasoning, expected = case
    splitter, parser, shown = run(pieces, opens)
    assert parser.content == content
    assert "".join(p.text for p in shown if p.kind == "text") == content
    assert "".join(p.text for p in shown if p.kind == "reasoning") == reasoning == splitter.reasoning
    streamed = [p.call for p in shown if p.kind == "tool_call"]
    assert streamed == parser.calls
    assert len(parser.calls) == len(expected)
    for got, (name, arguments, error) in zip(parser.calls, expected, strict=True):
        assert (got.name, got.arguments) == (name, arguments)
        assert got.raw in text and got.raw.startswith("<tool_call>")
        if error is None:
            assert got.error is None
        else:
            assert got.error is not None and error in got.error


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_whole_reply(case):
    check(case, [case[1]])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_streamed_split_at_every_character(case):
    text = case[1]
    for cut in range(1, len(text)):
        check(case, [text[:cut], text[cut:]])
    check(case, list(text))


def test_markup_is_never_shown_while_streaming():
    text = "Hi.\n" + call("get_weather", city="Baku")
    _, _, shown = run(list(text), False)
    assert all("<" not in p.text for p in shown if p.kind == "text")


def test_calls_as_openai_and_template_entries():
    _, parser, _ = run([call("get_weather", city="Tbilisi", days="1")], False)
    (got,) = parser.calls
    expected = {"name": "get_weather", "arguments": '{"city": "Tbilisi", "days": 1}'}
    assert got.to_openai()["function"] == expected
    assert got.for_template()["function"]["arguments"] == {"city": "Tbilisi", "days": 1}
