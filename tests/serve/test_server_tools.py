"""Tools, forced tool choice, JSON output and logprobs through the server, on random weights: the
constrained output parses and validates whatever the model would have written."""

from __future__ import annotations

import json

MODEL = "tiny"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def _check_weather_arguments(arguments: str) -> dict:
    parsed = json.loads(arguments)
    assert isinstance(parsed["city"], str)
    assert set(parsed) <= {"city", "days"} and isinstance(parsed.get("days", 0), int)
    return parsed


def test_a_forced_tool_call_has_openais_shape(text_server):
    reply = text_server.client().chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=96,
        seed=1,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and calls[0].type == "function" and calls[0].id
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    _check_weather_arguments(calls[0].function.arguments)  # type: ignore[union-attr]


def test_a_streamed_forced_call_arrives_as_tool_call_deltas(text_server):
    stream = text_server.client().chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=96, seed=2, stream=True
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert deltas, "no tool_calls delta"
    first = deltas[0][0]
    assert first.index == 0 and first.id and first.function.name == "get_weather"  # type: ignore[union-attr]
    _check_weather_arguments(first.function.arguments)  # type: ignore[union-attr, arg-type]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_a_tool_result_goes_back_and_the_history_is_reused(text_server):
    client = text_server.client()
    forced = {"type": "function", "function": {"name": "get_weather"}}
    first = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice=forced, max_tokens=96, seed=3
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear", "celsius": 21}'},
    ]
    second = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], max_tokens=8)
    assert second.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert second.usage.prompt_tokens_details.cached_tokens > 0  # type: ignore[union-attr]


def test_a_json_schema_answer_from_random_weights_validates(text_server):
    reply = text_server.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe someone."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
        max_tokens=120,
        seed=4,
    )
    person = json.loads(reply.choices[0].message.content or "")
    assert set(person) <= {"name", "age", "tags"} and {"name", "age"} <= set(person)
    assert isinstance(person["name"], str) and len(person["name"]) <= 12
    assert isinstance(person["age"], int) and not isinstance(person["age"], bool)
    assert (
        all(isinstance(t, str) and len(t) <= 8 for t in person.get("tags", []))
        and len(person.get("tags", [])) <= 3
    )


def test_a_json_object_answer_parses(text_server):
    reply = text_server.client().chat.completions.create(
        model=MODEL, messages=ASK, response_format={"type": "json_object"}, max_tokens=60, seed=5
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_logprobs_score_every_generated_token(text_server):
    client = text_server.client()
    settings = {"model": MODEL, "messages": ASK, "max_tokens": 6, "logprobs": True, "top_logprobs": 3}
    reply = client.chat.completions.create(**settings, extra_body={"min_tokens": 6})
    entries = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert entries is not None and len(entries) == reply.usage.completion_tokens == 6  # type: ignore[union-attr]
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 3 for e in entries)
    streamed = list(client.chat.completions.create(**settings, stream=True, extra_body={"min_tokens": 6}))
    scored = [
        e
        for c in streamed
        if c.choices and c.choices[0].logprobs
        for e in c.choices[0].logprobs.content or []
    ]
    assert len(scored) == 6
