"""The demo tools the tiny model learns to call, and seeded arithmetic and clock readings for its dialogues.

`calculator` takes `{"expression": string}` (an arithmetic expression); `current_time` takes nothing
(an optional `timezone` in some listings). The dialogues list them in varied wording and order, at
times beside tools the model never calls, so that the call follows the tool's name, not one fixed
system turn. DEMO_TOOLS is the canonical listing, written next to the checkpoint as `tools.json`.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

Tool = dict[str, Any]


def function_tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Tool:
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def calculator_tool(description: str = "Evaluate an arithmetic expression.") -> Tool:
    expression = {"type": "string", "description": "the expression, e.g. 12 * (3 + 4)"}
    return function_tool("calculator", description, {"expression": expression}, ["expression"])


def current_time_tool(description: str = "The current date and time.", timezone: bool = False) -> Tool:
    properties = {"timezone": {"type": "string", "description": "an IANA name; default: local"}}
    return function_tool("current_time", description, properties if timezone else {}, [])


DEMO_TOOLS = [calculator_tool(), current_time_tool()]
# Written next to the checkpoint: `qwen35web chat BUNDLE --tools CHECKPOINT/tools.json`.
DEMO_TOOLS_FILE = "tools.json"

CALCULATOR_DESCRIPTIONS = (
    "Evaluate an arithmetic expression.",
    "Evaluate an arithmetic expression and return the result.",
    "A calculator: + - * / and parentheses.",
    "Compute the value of a math expression.",
)
TIME_DESCRIPTIONS = (
    "The current date and time.",
    "Get the current date and time.",
    "Return today's date and the time now.",
    "What the clock says now (date, time, weekday).",
)
# Listed but never called: the call must follow the question, not the presence of a tool.
OTHER_TOOLS = (
    function_tool(
        "get_weather",
        "The weather in a city.",
        {"city": {"type": "string"}},
        ["city"],
    ),
    function_tool(
        "search_docs",
        "Search Python's documentation.",
        {"query": {"type": "string"}},
        ["query"],
    ),
    function_tool(
        "send_email",
        "Send an email.",
        {"to": {"type": "string"}, "body": {"type": "string"}},
        ["to", "body"],
    ),
)


def tool_listing(rng: random.Random, needed: list[str]) -> list[Tool]:
    """Tools for one dialogue: the `needed` ones (and often the other demo tool), maybe an unused
    one, in random order, with varied descriptions."""
    names = set(needed)
    if rng.random() < 0.75:
        names |= {"calculator", "current_time"}
    tools = []
    if "calculator" in names:
        tools.append(calculator_tool(rng.choice(CALCULATOR_DESCRIPTIONS)))
    if "current_time" in names:
        tools.append(current_time_tool(rng.choice(TIME_DESCRIPTIONS), timezone=rng.random() < 0.3))
    if rng.random() < 0.3:
        tools.append(rng.choice(OTHER_TOOLS))
    rng.shuffle(tools)
    return tools


@dataclass(frozen=True)
class Sum:
    """An arithmetic question: the expression the call carries, its words, and its value as text."""

    expression: str
    spoken: str | None  # "12 times 7" for a one-operator expression, else None
    value: str


OPERATORS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}


def format_number(value: Fraction) -> str:
    """As a calculator shows it: an integer, or a decimal of at most 6 places."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6f}".rstrip("0").rstrip(".")


def _operand(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return str(rng.randint(2, 99))
    if roll < 0.9:
        return str(rng.randint(100, 999))
    return f"{rng.randint(1, 99)}.{rng.randint(1, 9)}"


def _apply(left: Fraction, operator: str, right: Fraction) -> Fraction:
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    return left / right


def random_sum(rng: random.Random) -> Sum:
    """One expression: `a OP b` (most), `a OP b OP c` or `(a OP b) OP c`; never a division by zero."""
    terms = 2 if rng.random() < 0.7 else 3
    operands = [_operand(rng) for _ in range(terms)]
    operators = [rng.choice("+-*/") for _ in range(terms - 1)]
    if terms == 2:
        value = _apply(Fraction(operands[0]), operators[0], Fraction(operands[1]))
        spoken = f"{operands[0]} {OPERATORS[operators[0]]} {operands[1]}"
        return Sum(f"{operands[0]} {operators[0]} {operands[1]}", spoken, format_number(value))
    bracket = rng.random() < 0.5
    first = _apply(Fraction(operands[0]), operators[0], Fraction(operands[1]))
    if bracket:
        value = _apply(first, operators[1], Fraction(operands[2]))
        text = f"({operands[0]} {operators[0]} {operands[1]}) {operators[1]} {operands[2]}"
    else:
        text = f"{operands[0]} {operators[0]} {operands[1]} {operators[1]} {operands[2]}"
        value = Fraction(eval_flat(text))
    return Sum(text, None, format_number(value))


def eval_flat(text: str) -> Fraction:
    """`a OP b OP c` with * and / before + and - (the generator's own expressions only)."""
    a, op1, b, op2, c = text.split()
    x, y, z = Fraction(a), Fraction(b), Fraction(c)
    if op2 in "*/" and op1 in "+-":
        return _apply(x, op1, _apply(y, op2, z))
    return _apply(_apply(x, op1, y), op2, z)


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip


def random_moment(rng: random.Random) -> datetime.datetime:
    start = datetime.datetime(2024, 1, 1)
    return start + datetime.timedelta(seconds=rng.randrange(4 * 365 * 24 * 3600))


def clock_reading(moment: datetime.datetime, style: int) -> str:
    """What `current_time` returns, in one of three styles: ISO 8601, words, or a JSON object."""
    date, time = moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S")
    weekday = WEEKDAYS[moment.weekday()]
    if style == 0:
        return f"{date}T{time}"
    if style == 1:
        return f"{weekday}, {moment.day} {MONTHS[moment.month - 1]} {moment.year}, {time}"
    return f'{{"date": "{date}", "time": "{time}", "weekday": "{weekday}"}}'
