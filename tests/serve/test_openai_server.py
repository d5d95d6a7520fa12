"""`qwen35web serve` spoken to by the official `openai` client: models, answers streamed and not,
multi-turn state reuse (cached tokens), seeds, stop strings, cancellation, Ctrl+C."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.serve.server import ROOT, ServerProcess

MODEL = "tiny"
HELLO = [{"role": "user", "content": "Hello there"}]


def test_models_lists_the_one_model(text_server):
    client = text_server.client()
    assert [model.id for model in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "qwen35web"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_an_answer_with_usage(text_server):
    reply = text_server.client().chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=8, temperature=0, extra_body={"min_tokens": 8}
    )
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == MODEL and reply.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason == "length"
    usage = reply.usage
    assert usage is not None and usage.completion_tokens == 8 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens is not None


def test_a_stream_says_what_the_answer_says(text_server):
    client = text_server.client()
    settings = {"model": MODEL, "messages": HELLO, "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**settings)
    chunks = list(
        client.chat.completions.create(**settings, stream=True, stream_options={"include_usage": True})
    )
    assert all(chunk.object == "chat.completion.chunk" and chunk.id == chunks[0].id for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_a_resent_history_pays_only_for_the_new_tokens(text_server):
    client = text_server.client()
    history = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is json?"}]
    first = client.chat.completions.create(model=MODEL, messages=history, max_tokens=10, temperature=0)
    history += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And pathlib?"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=history, max_tokens=10, temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    # At least the first request's system and user turns were kept; the new turns were prefilled.
    assert first.usage.prompt_tokens - 5 <= cached < second.usage.prompt_tokens  # type: ignore[union-attr]


def test_a_seed_gives_the_same_answer(text_server):
    client = text_server.client()

    def sample(seed: int) -> str | None:
        settings = {"temperature": 1.0, "top_p": 0.95, "max_tokens": 16, "seed": seed}
        return (
            client.chat.completions.create(model=MODEL, messages=HELLO, **settings).choices[0].message.content
        )

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_a_stop_string_ends_the_answer_before_it(text_server):
    client = text_server.client()
    settings = {"model": MODEL, "messages": HELLO, "temperature": 1.0, "seed": 3, "max_tokens": 24}
    text = (
        client.chat.completions.create(**settings, extra_body={"min_tokens": 24}).choices[0].message.content
    )
    assert text is not None and len(text) > 8
    stop = text[6:9]
    stopped = client.chat.completions.create(**settings, stop=[stop])
    assert stopped.choices[0].message.content == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_concurrent_requests_queue_and_each_gets_its_own_answer(text_server):
    """One generation at a time: requests sent together are answered as if each were alone."""
    client = text_server.client()
    prompts = [
        [{"role": "user", "content": text}] for text in ("Hello there", "What is json?", "And pathlib?")
    ]

    def ask(messages: list) -> str | None:
        settings = {"max_tokens": 40, "temperature": 1.0, "seed": 11, "extra_body": {"min_tokens": 40}}
        return (
            client.chat.completions.create(model=MODEL, messages=messages, **settings)
            .choices[0]
            .message.content
        )

    alone = [ask(messages) for messages in prompts]
    assert all(alone) and len(set(alone)) == len(alone)
    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(ask, prompts))
    assert together == alone


def test_closing_a_stream_cancels_its_generation(text_server):
    client = text_server.client()
    start = len(text_server.log)
    long = {"max_tokens": 4000, "extra_body": {"min_tokens": 4000}}
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True, **long)
    for count, _ in enumerate(stream):
        if count == 3:
            break
    stream.close()
    line = text_server.wait_for_log("cancelled after", after=start)
    assert int(line.split("cancelled after ")[1].split()[0]) < 4000
    reply = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4)
    assert reply.choices[0].finish_reason in ("length", "stop")


def test_a_client_that_gives_up_waiting_cancels_its_generation(text_server):
    start = len(text_server.log)
    impatient = text_server.client(timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=4000, extra_body={"min_tokens": 4000}
        )
    text_server.wait_for_log("cancelled after", after=start)
    assert text_server.client().chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2).choices


def test_ctrl_c_stops_the_server_cleanly_mid_stream(export_bundle):
    server = ServerProcess(export_bundle("text", "fused"))
    client = server.client()
    assert client.models.list().data[0].id == "text-fused-fp32"
    stream = client.chat.completions.create(
        model="text-fused-fp32", messages=HELLO, stream=True, max_tokens=4000, extra_body={"min_tokens": 4000}
    )
    next(iter(stream))  # a generation is in flight
    assert server.stop() == 0
    server.wait_for_log("stopped")
    stream.close()


def test_a_bad_bundle_or_flag_is_one_line_and_exit_2(tmp_path):
    for args in ([str(tmp_path / "missing")], [str(tmp_path), "--port", "70000"]):
        proc = subprocess.run(
            [sys.executable, "-m", "qwen35web", "serve", *args], capture_output=True, text=True, cwd=ROOT
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
