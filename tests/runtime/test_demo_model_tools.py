"""The committed demo model (models/tiny-qwen35) uses its demo tools through the runtime, unforced:
given `tools.json`, an arithmetic question gets a `calculator` call that parses, the tool's result
goes back, and the model answers (resuming from its kept state) without another call; a time
question gets a `current_time` call; a question about Python gets an answer without a call; and the
CLI shows the same with `qwen35web chat --tools`.

What the model does not do yet (its card's table counts it): copy the question's expression into
the call, or quote the result in its answer. These tests pin what it does, so a regression in the
runtime's template rendering, parsing or tool turns shows up; they do not claim the arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from tests.run_async import run_async
from tests.runtime.native.test_chat_cli import _chat, _turns

CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "tiny-qwen35"
TOOLS_FILE = CHECKPOINT / "tools.json"
GREEDY = SamplingParams(greedy=True, max_new_tokens=64)


@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qwen35web.export.pipeline import ExportOptions, run_export

    bundle = tmp_path_factory.mktemp("demo") / "tiny-qwen35"
    run_export(ExportOptions(CHECKPOINT, bundle, ops="fused", dtype="fp32"))
    return bundle


async def _ask_and_answer(bundle: Path, question: str, result: str):
    runtime = await open_native(bundle)
    try:
        conversation = Conversation(runtime, tools=json.loads(TOOLS_FILE.read_text()))
        first = await conversation.say(question, GREEDY)
        if first.tool_calls and first.tool_calls[0].error is None:
            conversation.add_tool_result(first.tool_calls[0].id, result)
            async for _ in conversation.reply(GREEDY):
                pass
        return first, conversation.last, conversation.messages
    finally:
        await runtime.close()


def test_an_arithmetic_question_gets_a_calculator_call_then_an_answer_from_its_result(demo_bundle):
    first, answer, messages = run_async(_ask_and_answer(demo_bundle, "What is 37 * 12?", "444"))
    (call,) = first.tool_calls
    assert call.error is None, call.raw
    assert call.name == "calculator" and set(call.arguments) == {"expression"}
    assert call.arguments["expression"].strip()  # a non-empty expression (not the question's: see above)
    assert first.text == "" and first.stop_reason == "eos"
    assert answer is not first and answer.tool_calls == []
    assert answer.text.strip() and answer.stop_reason == "eos"
    assert answer.reused_tokens >= first.prompt_tokens  # the tool turn resumed from the kept state
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]


def test_a_time_question_gets_a_current_time_call(demo_bundle):
    reading = "2026-12-06T15:42:10"
    first, answer, _ = run_async(_ask_and_answer(demo_bundle, "What time is it?", reading))
    (call,) = first.tool_calls
    assert call.error is None and call.name == "current_time" and call.arguments == {}
    assert answer.text.strip() and answer.tool_calls == [] and answer.stop_reason == "eos"


def test_a_question_about_python_gets_an_answer_without_a_call(demo_bundle):
    first, answer, _ = run_async(_ask_and_answer(demo_bundle, "What does json.dumps do?", ""))
    assert first.tool_calls == [] and first.text.strip() and first.stop_reason == "eos"
    assert answer is first


def test_the_chat_cli_shows_the_unforced_call_and_the_answer(demo_bundle):
    proc = _chat(
        demo_bundle,
        "--json",
        "--tools",
        str(TOOLS_FILE),
        "--greedy",
        "--max-new-tokens",
        "64",
        stdin="What is 37 * 12?\n444\n",
    )
    first, second = _turns(proc)
    (call,) = first["tool_calls"]
    assert call["name"] == "calculator" and call["error"] is None
    assert set(call["arguments"]) == {"expression"}
    assert second["text"].strip() and second["tool_calls"] == []
    assert second["reused_tokens"] >= first["prompt_tokens"]
