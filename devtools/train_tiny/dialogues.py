"""A small synthetic, seeded chat and tool-call set, rendered with the tiny model's chat template.

Kinds (`DIALOGUE_MIX`, per 100 dialogues):
- `calculator`: tools listed, an arithmetic question (digits or words), the call
  `calculator(expression=...)`, its result as a `tool` message, an answer that uses it;
- `current_time`: tools listed, a question about the time, date, weekday or year, the call
  `current_time()`, a clock reading, an answer taken from it;
- `two_calls`: both of the above in one conversation (the second question after the first answer);
- `no_call`: tools listed, a question about Python (or small talk) answered without a call;
- `chat`: no tools, several turns: a greeting, one or two questions about Python, thanks.

The Python questions and answers are the corpus's own chat exchanges (training sources only), so
the held-out split stays held out. Everything comes from one `random.Random(seed)`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devtools.train_tiny.chat_template import TINY_CHAT_TEMPLATE
from devtools.train_tiny.demo_tools import (
    WEEKDAYS,
    Tool,
    clock_reading,
    random_moment,
    random_sum,
    tool_listing,
)
from qwen35web.runtime.chat import render_chat

Message = dict[str, Any]
QA = tuple[str, str]  # (question, answer)

DIALOGUE_MIX = {"calculator": 46, "current_time": 20, "two_calls": 6, "no_call": 12, "chat": 16}
SYSTEM_PROMPTS = ("You are a helpful assistant.", "Answer briefly.", "You are a tiny model. Be concise.")
SYMBOL_QUESTIONS = (
    "What is {e}?",
    "What's {e}?",
    "Calculate {e}.",
    "Compute {e}.",
    "How much is {e}?",
    "Please work out {e}.",
    "{e} = ?",
    "Can you calculate {e} for me?",
    "what is {e}",
    "Use the calculator: {e}",
)
WORD_QUESTIONS = ("What is {w}?", "How much is {w}?", "What's {w}?", "Calculate {w}.")
SUM_ANSWERS = ("{e} = {r}.", "The answer is {r}.", "It is {r}.", "{e} is {r}.", "The result is {r}.")
WORD_ANSWERS = ("{w} is {r}.", "The answer is {r}.", "It is {r}.")
# (question, which part of the reading answers it, answer template)
TIME_QUESTIONS = (
    ("What time is it?", "time", "It is {time}."),
    ("What's the time?", "time", "The time is {time}."),
    ("Tell me the current time.", "time", "It is {time} now."),
    ("What is the date today?", "date", "Today is {date}."),
    ("What's today's date?", "date", "Today is {date}."),
    ("What day is it today?", "weekday", "Today is {weekday}."),
    ("Which day of the week is it?", "weekday", "It is {weekday}."),
    ("What year is it?", "year", "It is {year}."),
)
SMALL_TALK: tuple[QA, ...] = (
    ("Hello!", "Hello! How can I help you?"),
    ("Hi", "Hi! What would you like to know?"),
    ("Good morning.", "Good morning! What can I do for you?"),
    ("Who are you?", "I am a tiny language model trained on Python's documentation."),
    ("What can you do?", "I can answer short questions about Python, and use a calculator and a clock when I have them."),  # noqa: E501
    ("How are you?", "I am fine, thank you. How can I help?"),
)  # fmt: skip
THANKS: tuple[QA, ...] = (
    ("Thanks!", "You're welcome."),
    ("Thank you.", "Glad to help."),
    ("Great, thanks.", "You're welcome!"),
    ("OK, bye.", "Goodbye!"),
)


@dataclass(frozen=True)
class Dialogue:
    kind: str
    messages: list[Message]
    tools: list[Tool] = field(default_factory=list)

    def render(self) -> str:
        """The whole conversation as the tiny template renders it (no generation prompt)."""
        return render_chat(
            TINY_CHAT_TEMPLATE, self.messages, add_generation_prompt=False, tools=self.tools or None
        )


def tool_call(name: str, arguments: dict[str, Any], call_id: str) -> Message:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": "", "tool_calls": [call]}


def calculator_turns(rng: random.Random, call_id: str) -> list[Message]:
    """user question, the call, the result, the answer."""
    total = random_sum(rng)
    if total.spoken is not None and rng.random() < 0.3:
        question = rng.choice(WORD_QUESTIONS).format(w=total.spoken)
        answer = rng.choice(WORD_ANSWERS).format(w=total.spoken, r=total.value)
        answer = answer[0].upper() + answer[1:]
    else:
        question = rng.choice(SYMBOL_QUESTIONS).format(e=total.expression)
        answer = rng.choice(SUM_ANSWERS).format(e=total.expression, r=total.value)
    return [
        {"role": "user", "content": question},
        tool_call("calculator", {"expression": total.expression}, call_id),
        {"role": "tool", "content": total.value, "tool_call_id": call_id},
        {"role": "assistant", "content": answer},
    ]


def clock_turns(rng: random.Random, call_id: str) -> list[Message]:
    moment = random_moment(rng)
    question, part, template = rng.choice(TIME_QUESTIONS)
    # Only readings that hold the weekday (words, JSON) answer a weekday question.
    style = rng.choice((1, 2)) if part == "weekday" else rng.randrange(3)
    reading = clock_reading(moment, style)
    facts = {
        "time": moment.strftime("%H:%M"),
        # The words style reads "Sunday, 6 December 2026, 14:35:07": its date is what precedes the time.
        "date": reading.rsplit(",", 1)[0] if style == 1 else moment.strftime("%Y-%m-%d"),
        "weekday": WEEKDAYS[moment.weekday()],
        "year": str(moment.year),
    }
    return [
        {"role": "user", "content": question},
        tool_call("current_time", {}, call_id),
        {"role": "tool", "content": reading, "tool_call_id": call_id},
        {"role": "assistant", "content": template.format(**facts)},
    ]


def _exchange(question: str, answer: str) -> list[Message]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _maybe_system(rng: random.Random, share: float = 0.3) -> list[Message]:
    return [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] if rng.random() < share else []


class DialogueMaker:
    """Makes dialogues of each kind from one seeded generator and the corpus's exchanges."""

    def __init__(self, seed: int, exchanges: list[QA]):
        if not exchanges:
            raise ValueError("the dialogues need at least one question-and-answer exchange")
        self.rng = random.Random(seed)
        self.exchanges = exchanges
        self.calls = 0

    def call_id(self) -> str:
        self.calls += 1
        return f"call_{self.calls}"

    def python_exchange(self) -> list[Message]:
        return _exchange(*self.rng.choice(self.exchanges))

    def calculator(self) -> Dialogue:
        turns = calculator_turns(self.rng, self.call_id())
        if self.rng.random() < 0.2:
            turns += _exchange(*self.rng.choice(THANKS))
        return Dialogue("calculator", _maybe_system(self.rng) + turns, tool_listing(self.rng, ["calculator"]))

    def current_time(self) -> Dialogue:
        turns = clock_turns(self.rng, self.call_id())
        return Dialogue(
            "current_time", _maybe_system(self.rng) + turns, tool_listing(self.rng, ["current_time"])
        )

    def two_calls(self) -> Dialogue:
        parts = [calculator_turns(self.rng, self.call_id()), clock_turns(self.rng, self.call_id())]
        self.rng.shuffle(parts)
        tools = tool_listing(self.rng, ["calculator", "current_time"])
        return Dialogue("two_calls", _maybe_system(self.rng) + parts[0] + parts[1], tools)

    def no_call(self) -> Dialogue:
        first = self.python_exchange() if self.rng.random() < 0.7 else _exchange(*self.rng.choice(SMALL_TALK))
        tools = tool_listing(self.rng, [self.rng.choice(["calculator", "current_time"])])
        return Dialogue("no_call", _maybe_system(self.rng) + first, tools)

    def chat(self) -> Dialogue:
        turns = _exchange(*self.rng.choice(SMALL_TALK)) if self.rng.random() < 0.6 else []
        for _ in range(self.rng.choice((1, 1, 2))):
            turns += self.python_exchange()
        if self.rng.random() < 0.6:
            turns += _exchange(*self.rng.choice(THANKS))
        if len(turns) < 4:  # always several turns
            turns = _exchange(*self.rng.choice(SMALL_TALK)) + turns
        return Dialogue("chat", _maybe_system(self.rng) + turns)

    def make(self, count: int) -> list[Dialogue]:
        """`count` dialogues in DIALOGUE_MIX's proportions, in a seeded random order."""
        makers: dict[str, Callable[[], Dialogue]] = {
            "calculator": self.calculator,
            "current_time": self.current_time,
            "two_calls": self.two_calls,
            "no_call": self.no_call,
            "chat": self.chat,
        }
        total = sum(DIALOGUE_MIX.values())
        kinds = [kind for kind, share in DIALOGUE_MIX.items() for _ in range(round(count * share / total))]
        self.rng.shuffle(kinds)
        return [makers[kind]() for kind in kinds]


def make_dialogues(count: int, seed: int, exchanges: list[QA]) -> list[Dialogue]:
    return DialogueMaker(seed, exchanges).make(count)
