"""Output that always parses: JSON schemas, any JSON object and forced tool calls on random weights
(the tiny test model), logprobs, and exact state reuse across a tool turn."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import numpy as np
import pytest

from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.grammar import DEAD, LazyDfa
from qwen35web.runtime.json_grammar import SchemaError, response_format_grammar, tool_call_grammar
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.tool_calls import parse_call
from tests.run_async import run_async
from tests.runtime.tool_fixtures import CLOCK, PERSON_SCHEMA, TOOL_TEMPLATE, TOOLS, WEATHER, validate

SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}}


def random_walk(dfa: LazyDfa, rng: random.Random, steps: int) -> bytes:
    """Bytes the automaton allows, chosen at random, then the shortest way to the end."""
    state, out = dfa.start, bytearray()
    for _ in range(steps):
        allowed = [b for b in range(256) if dfa.step(state, b) != DEAD]
        if not allowed or (dfa.accepting[state] and rng.random() < 0.2):
            break
        byte = rng.choice(allowed)
        out.append(byte)
        state = dfa.step(state, byte)
    return bytes(out) + dfa.completion(state)


@pytest.mark.parametrize("seed", range(8))
def test_every_path_through_a_schema_validates(seed):
    dfa = LazyDfa(response_format_grammar(SCHEMA_FORMAT))
    value = json.loads(random_walk(dfa, random.Random(seed), 150))
    validate(value, PERSON_SCHEMA)


@pytest.mark.parametrize("seed", range(8))
def test_every_path_through_a_forced_call_parses(seed):
    dfa = LazyDfa(tool_call_grammar("get_weather", WEATHER["function"]["parameters"]))
    raw = random_walk(dfa, random.Random(seed), 200).decode("utf-8", "replace")
    call = parse_call(raw, TOOLS, "call_0")
    assert call.error is None, call
    validate(call.arguments, WEATHER["function"]["parameters"])


_CITY_OPENING = b"<tool_call>\n<function=get_weather>\n<parameter=city>\n"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(b"", ""), (b"Paris", "Paris"), (b" Paris\nFrance", " Paris\nFrance"), (b"<b>", "<b>"), (b"\n", None)],
)
def test_a_forced_string_value_never_gains_a_leading_newline(value, parsed):
    """The opening tag's newline is layout: a second one would become part of the value, so the
    grammar refuses it (and a value that is only "\n" with it); other text is kept verbatim."""
    dfa = LazyDfa(tool_call_grammar("get_weather", WEATHER["function"]["parameters"]))
    state = dfa.walk(dfa.walk(dfa.start, _CITY_OPENING), value)
    if parsed is None:
        assert state == DEAD
        return
    assert state != DEAD
    raw = (_CITY_OPENING + value + dfa.completion(state)).decode()
    call = parse_call(raw, TOOLS, "call_0")
    assert call.error is None and call.arguments["city"] == parsed, call


@pytest.mark.parametrize(
    ("response_format", "message"),
    [
        (
            {"type": "json_schema", "json_schema": {"schema": {"type": "string", "pattern": "a+"}}},
            "'pattern'",
        ),
        ({"type": "json_schema", "json_schema": {"schema": {"type": "date"}}}, "type must be one of"),
        ({"type": "json_schema", "json_schema": {}}, "needs {'json_schema'"),
        ({"type": "yaml"}, "response_format type"),
        (
            {"type": "json_schema", "json_schema": {"schema": {"type": "object", "required": ["x"]}}},
            "not among the properties",
        ),
    ],
)
def test_a_schema_outside_the_subset_is_one_clear_error(response_format, message):
    with pytest.raises(SchemaError, match=message):
        response_format_grammar(response_format)


async def _open(bundle, budget: int = 64 << 20):
    runtime = await open_native(bundle, kept_states_budget=budget)
    runtime.manifest = dataclasses.replace(runtime.manifest, chat_template=TOOL_TEMPLATE)
    return runtime


PARAMS = [
    SamplingParams(greedy=True, max_new_tokens=60),
    SamplingParams(temperature=1.0, seed=3, max_new_tokens=60),
    SamplingParams(temperature=0.7, top_k=20, top_p=0.9, seed=5, max_new_tokens=40),
]


@pytest.mark.parametrize("params", PARAMS, ids=["greedy", "sampled", "top-k-top-p"])
def test_random_weights_answer_json_that_validates(export_bundle, params):
    async def go():
        runtime = await _open(export_bundle("text", "fused"))
        results = []
        cases = [(False, SCHEMA_FORMAT), (True, SCHEMA_FORMAT), (False, {"type": "json_object"})]
        for thinking, response_format in cases:
            conversation = Conversation(runtime, enable_thinking=thinking)
            result = await conversation.say("Describe someone.", params, response_format=response_format)
            results.append((result, runtime.tokenizer.decode(result.tokens)))
        await runtime.close()
        return results

    for index, (result, written) in enumerate(run_async(go())):
        assert result.stop_reason == "eos"
        value = json.loads(result.text)
        if index < 2:
            validate(value, PERSON_SCHEMA)
        else:
            assert isinstance(value, dict)
        if index == 1:
            assert "</think>" in written  # the reasoning came first, unconstrained, then the answer


@pytest.mark.parametrize("choice", [{"type": "function", "function": {"name": "get_weather"}}, "required"])
def test_forced_tool_calls_on_random_weights(export_bundle, choice):
    async def go():
        runtime = await _open(export_bundle("text", "fused"))
        conversation = Conversation(runtime, tools=TOOLS)
        params = SamplingParams(temperature=1.0, seed=11, max_new_tokens=120)
        result = await conversation.say("What's the weather?", params, tool_choice=choice)
        await runtime.close()
        return conversation, result

    conversation, result = run_async(go())
    assert result.stop_reason == "eos" and result.tool_calls
    for call in result.tool_calls:
        assert call.error is None, call
        assert not str(call.arguments.get("city", "")).startswith("\n"), call  # layout is not value
        tool = WEATHER if call.name == "get_weather" else CLOCK
        validate(call.arguments, tool["function"]["parameters"])
    assert conversation.messages[-1]["tool_calls"][0]["function"]["name"] == result.tool_calls[0].name


def test_logprobs_score_each_generated_token(export_bundle):
    async def go():
        runtime = await _open(export_bundle("text", "fused"))
        conversation = Conversation(runtime, enable_thinking=False)
        greedy = await conversation.say("Hi", SamplingParams(greedy=True, max_new_tokens=8), top_logprobs=4)
        sampled = await conversation.say(
            "Again", SamplingParams(temperature=0.8, seed=2, max_new_tokens=8), top_logprobs=0
        )
        await runtime.close()
        return greedy, sampled

    greedy, sampled = run_async(go())
    for result, top in [(greedy, 4), (sampled, 0)]:
        assert len(result.logprobs) == len(result.tokens)
        for token, entry in zip(result.tokens, result.logprobs, strict=True):
            assert entry.token_id == token and entry.logprob <= 0 and len(entry.top_logprobs) == top
            values = [a.logprob for a in entry.top_logprobs]
            assert values == sorted(values, reverse=True)
            assert sum(math.exp(v) for v in values) <= 1 + 1e-5
    for token, entry in zip(greedy.tokens, greedy.logprobs, strict=True):
        assert entry.top_logprobs[0].token_id == token  # greedy takes the most likely


def test_bad_tool_input_is_one_clear_error(export_bundle):
    async def go():
        runtime = await _open(export_bundle("text", "fused"))
        try:
            with pytest.raises(GenerationInputError, match="not among the tools"):
                await Conversation(runtime, tools=TOOLS).say(
                    "x", PARAMS[0], tool_choice={"type": "function", "function": {"name": "nope"}}
                )
            with pytest.raises(GenerationInputError, match="must be a JSON schema of type object"):
                Conversation(
                    runtime, tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]
                )
            with pytest.raises(GenerationInputError, match="top_logprobs"):
                await Conversation(runtime).say("x", PARAMS[0], top_logprobs=21)
        finally:
            await runtime.close()

    run_async(go())


def test_a_tool_turn_reuses_the_kept_state_exactly(export_bundle):
    """After a call and its result, the reply resumes from the kept state and its prompt's logits
    are those of a fresh prefill of the same prompt."""

    async def go():
        runtime = await _open(export_bundle("text", "fused"))
        conversation = Conversation(runtime, tools=TOOLS, enable_thinking=False)
        params = SamplingParams(temperature=1.0, seed=1, max_new_tokens=60)
        first_prompt = conversation.prompt_for("Weather in Oslo?")
        first = await conversation.say("Weather in Oslo?", params, tool_choice="required")
        for call in first.tool_calls:
            conversation.add_tool_result(call.id, "cloudy, 4 degrees")
        prompt = conversation.render(conversation.messages)
        async for _ in conversation.reply(SamplingParams(greedy=True, max_new_tokens=1)):
            pass
        kept = np.array(await runtime.runner.last_logits())  # one token: no step after the prompt
        fresh = np.array(await runtime.logits(prompt.ids))
        await runtime.close()
        return first_prompt, first, prompt, conversation.last, kept, fresh

    first_prompt, first, prompt, last, kept, fresh = run_async(go())
    assert first.tool_calls and all(c.error is None for c in first.tool_calls)
    assert last is not None and last.prompt_tokens == len(prompt.ids)
    assert last.reused_tokens >= first_prompt.history_tokens > 0
    assert np.abs(kept - fresh).max() <= 1e-5
