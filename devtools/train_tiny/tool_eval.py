"""How well an exported demo model uses its tools, measured with the runtime on a held-out synthetic set.

    python -m devtools.train_tiny.tool_eval BUNDLE [--count 60] [--seed 1] [--json OUT.json]

The cases come from the same generator as the training dialogues, with another seed (so other
numbers, clock readings and tool listings): arithmetic and clock questions with the tools listed,
and questions that need no tool (small talk and Python questions of the held-out documentation's
kind). Each is asked through `Conversation` (greedy, unforced: tool_choice "auto"); a call is
scored as parsed (the runtime's parser read it without error), the right tool, and the right
arguments (the expression as the question wrote it); then the tool's result goes back and the
answer is checked for the value it should quote. A question that needs no tool is scored on
making no call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devtools.train_tiny.demo_tools import Tool, tool_listing
from devtools.train_tiny.dialogues import SMALL_TALK, calculator_turns, clock_turns

HELD_OUT_SEED = 1  # the training dialogues use corpus.DIALOGUE_SEED (0)
# Questions about names whose documentation is not in the training split's chat exchanges.
PYTHON_QUESTIONS = (
    "What does os.path.join do?",
    "What is str.split for?",
    "Explain itertools.chain.",
    "What does json.loads do?",
    "Tell me about the with statement.",
)
MAX_NEW_TOKENS = 64


@dataclass
class Case:
    kind: str  # "calculator", "current_time" or "no_call"
    question: str
    tools: list[Tool]
    expected_arguments: dict[str, Any] = field(default_factory=dict)
    result: str = ""  # what the tool returns
    answer_must_hold: str = ""  # the value a good answer quotes


@dataclass
class Outcome:
    kind: str
    question: str
    calls: list[dict[str, Any]]  # the calls the model made (ToolCall.to_json)
    called_right_tool: bool
    parsed: bool
    right_arguments: bool
    answer: str = ""
    answer_uses_result: bool = False


def held_out_cases(count: int, seed: int = HELD_OUT_SEED) -> list[Case]:
    """`count` cases: ~50 % arithmetic, ~30 % clock, ~20 % questions that need no tool."""
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        roll = index % 10
        if roll < 5:
            user, call, result, _ = calculator_turns(rng, f"call_{index}")
            arguments = call["tool_calls"][0]["function"]["arguments"]
            cases.append(Case("calculator", user["content"], tool_listing(rng, ["calculator"]), arguments,
                              result["content"], result["content"]))  # fmt: skip
        elif roll < 8:
            user, _, result, answer = clock_turns(rng, f"call_{index}")
            # The answer's quoted part: what follows "is" in "It is 16:10." / "Today is Sunday."
            quoted = answer["content"].rstrip(".").split(" is ", 1)[1].removesuffix(" now")
            cases.append(Case("current_time", user["content"], tool_listing(rng, ["current_time"]), {},
                              result["content"], quoted))  # fmt: skip
        else:
            question = rng.choice(PYTHON_QUESTIONS + tuple(q for q, _ in SMALL_TALK))
            cases.append(Case("no_call", question, tool_listing(rng, ["calculator"])))
    return cases


async def run_case(runtime: Any, case: Case) -> Outcome:
    from qwen35web.runtime.conversation import Conversation
    from qwen35web.runtime.sampling import SamplingParams

    params = SamplingParams(greedy=True, max_new_tokens=MAX_NEW_TOKENS)
    conversation = Conversation(runtime, tools=case.tools)
    first = await conversation.say(case.question, params)
    calls = first.tool_calls
    expected_tool = None if case.kind == "no_call" else case.kind
    outcome = Outcome(
        kind=case.kind,
        question=case.question,
        calls=[call.to_json() for call in calls],
        called_right_tool=[call.name for call in calls] == ([expected_tool] if expected_tool else []),
        parsed=all(call.error is None for call in calls),
        right_arguments=bool(expected_tool and calls) and calls[0].arguments == case.expected_arguments,
        answer=first.text,
    )
    if expected_tool is None or not outcome.called_right_tool or not outcome.parsed:
        return outcome
    conversation.add_tool_result(calls[0].id, case.result)
    async for _ in conversation.reply(params):
        pass
    assert conversation.last is not None
    outcome.answer = conversation.last.text
    outcome.answer_uses_result = case.answer_must_hold in outcome.answer
    return outcome


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Per kind: cases, calls made, parsed, right tool, right arguments, answers that use the result."""
    summary: dict[str, Any] = {}
    for kind in ("calculator", "current_time", "no_call"):
        mine = [o for o in outcomes if o.kind == kind]
        summary[kind] = {
            "cases": len(mine),
            "made_a_call": sum(bool(o.calls) for o in mine),
            "parsed": sum(bool(o.calls) and o.parsed for o in mine),
            "right_tool": sum(o.called_right_tool for o in mine),
            "right_arguments": sum(o.right_arguments for o in mine),
            "answer_uses_result": sum(o.answer_uses_result for o in mine),
        }
    return summary


async def evaluate_bundle(bundle: Path, count: int, seed: int) -> tuple[dict[str, Any], list[Outcome]]:
    from qwen35web.runtime.native.open_bundle import open_native

    runtime = await open_native(bundle, threads=1)
    try:
        outcomes = [await run_case(runtime, case) for case in held_out_cases(count, seed)]
    finally:
        await runtime.close()
    return summarize(outcomes), outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.train_tiny.tool_eval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("bundle", type=Path, help="an exported bundle of the demo model")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--json", type=Path, default=None, help="write the summary and every case here")
    args = parser.parse_args(argv)
    if args.count < 1 or not args.bundle.is_dir():
        print("error: needs a bundle directory and --count >= 1", file=sys.stderr)
        return 2
    summary, outcomes = asyncio.run(evaluate_bundle(args.bundle, args.count, args.seed))
    if args.json is not None:
        dtype = json.loads((args.bundle / "manifest.json").read_text()).get("dtype", "?")
        report = {
            "count": args.count,
            "seed": args.seed,
            "bundle": f"the bundle of `qwen35web export CHECKPOINT BUNDLE --dtype {dtype}`",
            "summary": summary,
            "cases": [asdict(o) for o in outcomes],
        }
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
