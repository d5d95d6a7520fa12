"""The page's Python side (`runtime/browser/session.py`, `images.py`) in CPython, against a fake FFI seam.

In the page, `WebSession` drives onnxruntime-web through `browser/engine.py` and reads the bundle's files
through the worker's file store; here a CPython engine that opens the same relative file names stands in for
the first, and the bundle directory for the second. Everything above that seam is the code the page runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from qwen35web.runtime.browser.session import WebSession, open_session
from qwen35web.runtime.bundle_format import MANIFEST
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.native.engine import NativeEngine
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from tests.run_async import run_async

GREEDY = {"greedy": True, "maxNewTokens": 12}


class BundleEngine(NativeEngine):
    """The web engine's contract in CPython: graphs are opened by their names inside the bundle."""

    def __init__(self, bundle: Path):
        super().__init__(threads=1)
        self.bundle = bundle

    async def open(self, role: str, source: str) -> None:
        await super().open(role, str(self.bundle / source))


class BundleFiles:
    """The worker's file store: the bundle's verified files by their names."""

    def __init__(self, bundle: Path):
        self.bundle = bundle

    def text(self, path: str) -> str:
        return (self.bundle / path).read_text(encoding="utf-8")


class JsBytes:
    """A stand-in for a Pyodide proxy of a JS Uint8Array (`to_bytes()`)."""

    def __init__(self, data: bytes):
        self.data = data

    def to_bytes(self) -> bytes:
        return self.data


async def _session(bundle: Path) -> WebSession:
    manifest_text = (bundle / MANIFEST).read_text(encoding="utf-8")
    session = await open_session(manifest_text, BundleEngine(bundle), BundleFiles(bundle), "tiny")
    assert isinstance(session, WebSession), session
    return session


async def _generate(session: WebSession, request: dict) -> tuple[dict, list[tuple[str, str]]]:
    pieces: list[tuple[str, str]] = []
    answer = await session.generate(json.dumps(request), lambda text, kind: pieces.append((kind, text)))
    return json.loads(answer), pieces


def test_a_chat_turn_in_the_page_equals_the_native_conversation(export_bundle):
    bundle = export_bundle("text", "fused")
    messages = [{"role": "user", "content": "Tell me about json."}]

    async def go():
        session = await _session(bundle)
        described = json.loads(session.describe())
        page, pieces = await _generate(session, {"messages": messages, "chat": True, **GREEDY})
        runtime = await open_native(bundle)
        native = await Conversation(runtime).say(
            "Tell me about json.", SamplingParams(greedy=True, max_new_tokens=12)
        )
        await runtime.close()
        await session.runtime.close()
        return described, page, pieces, native

    described, page, pieces, native = run_async(go())
    assert described["model"] == "tiny" and described["chat"] is True
    assert page["tokens"] == native.tokens and page["text"] == native.text
    assert "".join(text for kind, text in pieces if kind == "text") == page["text"]
    assert page["stopReason"] == native.stop_reason and page["promptTokens"] == native.prompt_tokens


def test_bad_requests_answer_a_typed_error(export_bundle):
    async def go():
        session = await _session(export_bundle("text", "fused"))
        answers = [
            json.loads(await session.generate(text, lambda *_: None))
            for text in ("{not json", "[]", json.dumps({"prompt": "hi", "temperature": -1}))
        ]
        answers.append(json.loads(await session.logits("[1, -5]")))
        answers.append(json.loads(session.add_image(2, 2, JsBytes(b"\0" * 12))))  # a text-only bundle
        await session.runtime.close()
        return answers

    answers = run_async(go())
    assert [a.get("errorType") for a in answers[:4]] == ["GenerationInputError"] * 4
    assert "not valid JSON" in answers[0]["error"] and "temperature" in answers[2]["error"]
    assert "error" in answers[4]


def test_a_broken_manifest_opens_nothing_and_says_why(export_bundle, tmp_path):
    bundle = export_bundle("text", "fused")

    async def go():
        return await open_session("{}", BundleEngine(bundle), BundleFiles(bundle), "tiny")

    answer = run_async(go())
    assert isinstance(answer, str)
    assert json.loads(answer)["errorType"] == "BundleError"


def test_images_arrive_as_js_bytes(export_bundle):
    async def go():
        session = await _session(export_bundle("vl", "fused"))
        size = json.loads(session.image_target_size(40.0, 56.0))  # JS numbers arrive as floats
        rgb = bytes(range(256)) * (size["height"] * size["width"] * 3 // 256 + 1)
        added = json.loads(
            session.add_image(
                size["height"], size["width"], JsBytes(rgb[: size["height"] * size["width"] * 3])
            )
        )
        content = [{"type": "image", "image_id": added["imageId"]}, {"type": "text", "text": "What is it?"}]
        result, _ = await _generate(
            session, {"messages": [{"role": "user", "content": content}], "chat": True, **GREEDY}
        )
        await session.runtime.close()
        return size, added, result

    size, added, result = run_async(go())
    assert size["height"] > 0 and added["tokens"] > 0
    assert result["imagesEncoded"] == 1 and result["promptTokens"] > added["tokens"]


def test_a_saved_conversation_restores_in_another_session(export_bundle):
    bundle = export_bundle("text", "fused")
    messages = [{"role": "user", "content": "Hello there"}]

    async def go():
        first = await _session(bundle)
        reply, _ = await _generate(first, {"messages": messages, "chat": True, **GREEDY})
        history = [*messages, {"role": "assistant", "content": reply["text"]}]
        blob = await first.save_conversation(json.dumps(history))
        with_tools = await first.save_conversation(json.dumps(history), json.dumps([WEATHER_TOOL]))
        not_a_tool = json.dumps([{"type": "x"}])
        bad_tools = json.loads(await first.save_conversation(json.dumps(history), not_a_tool))
        second = await _session(bundle)
        tools = json.loads(await second.restore_conversation(JsBytes(with_tools)))["tools"]
        restored = json.loads(await second.restore_conversation(JsBytes(blob)))
        follow = [*restored["messages"], {"role": "user", "content": "And then?"}]
        again, _ = await _generate(second, {"messages": follow, "chat": True, **GREEDY})
        await first.runtime.close()
        await second.runtime.close()
        return history, restored, again, tools, bad_tools

    history, restored, again, tools, bad_tools = run_async(go())
    assert restored["messages"] == history and restored["tokens"] > 0 and restored["tools"] == []
    assert tools == [WEATHER_TOOL]  # saved beside the messages (the state was rendered with them)
    assert bad_tools["code"] == "bad-input" and "function" in bad_tools["error"]
    assert again["reusedTokens"] > 0


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_chat_completions_answer_in_openais_shapes(export_bundle):
    """The module's chat.completions.create: a chat.completion, streamed chunks, a forced tool call
    (random weights: the constrained output still parses) and a refused request's error object."""

    async def go():
        session = await _session(export_bundle("text", "fused"))
        plain = {"messages": ASK_WEATHER, "max_tokens": 8, "temperature": 0}
        answered = json.loads(await session.chat_completion(json.dumps(plain), lambda _: None))
        chunks: list[dict] = []
        streamed = json.loads(
            await session.chat_completion(
                json.dumps({**plain, "stream": True}), lambda text: chunks.append(json.loads(text))
            )
        )
        forced = {
            "messages": ASK_WEATHER,
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "max_tokens": 96,
            "seed": 1,
        }
        called = json.loads(await session.chat_completion(json.dumps(forced), lambda _: None))["response"]
        bad = {
            "messages": ASK_WEATHER,
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "time"}},
        }
        refused = json.loads(await session.chat_completion(json.dumps(bad), lambda _: None))
        unknown_role = json.loads(
            await session.chat_completion(
                json.dumps({"messages": [{"role": "robot", "content": "x"}]}), lambda _: None
            )
        )
        await session.runtime.close()
        return answered, chunks, streamed, called, refused, unknown_role

    answered, chunks, streamed, called, refused, unknown_role = run_async(go())
    reply = answered["response"]
    assert answered["stopReason"] == "max_new_tokens" and streamed["response"] is None
    assert reply["object"] == "chat.completion" and reply["model"] == "tiny"
    message = reply["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    assert reply["usage"]["completion_tokens"] == 8 and reply["choices"][0]["finish_reason"] == "length"

    assert streamed["streamed"] == len(chunks) and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == message["content"]  # greedy: the stream says what the answer said

    choice = called["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"] and call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"])["city"], str)

    assert refused["code"] == "bad-input" and refused["openai"]["param"] == "tool_choice"
    assert refused["openai"]["type"] == "invalid_request_error" and "time" in refused["error"]
    assert refused["status"] == 400
    assert unknown_role["code"] == "bad-input" and unknown_role["openai"]["param"] == "messages[0].role"


def test_a_chat_completion_takes_the_images_the_worker_added(export_bundle):
    """image_url parts: the worker decodes and adds each data URL first; the ids arrive in part order and
    the mapping's image hook hands them out (the bytes are not decoded again in Python)."""

    async def go():
        session = await _session(export_bundle("vl", "fused"))
        size = json.loads(session.image_target_size(40.0, 56.0))
        pixels = size["height"] * size["width"] * 3
        added = json.loads(session.add_image(size["height"], size["width"], JsBytes(bytes(pixels))))
        part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        content = [part, {"type": "text", "text": "What is it?"}]
        request = {"messages": [{"role": "user", "content": content}], "max_tokens": 4, "temperature": 0}
        answer = json.loads(
            await session.chat_completion(json.dumps(request), lambda _: None, json.dumps([added["imageId"]]))
        )
        missing = json.loads(await session.chat_completion(json.dumps(request), lambda _: None, "[]"))
        await session.runtime.close()
        return added, answer, missing

    added, answer, missing = run_async(go())
    assert answer["response"]["usage"]["prompt_tokens"] > added["tokens"]  # the image's tokens are in it
    assert answer["response"]["choices"][0]["finish_reason"] == "length"
    assert missing["code"] == "bad-input" and missing["openai"]["param"] == "messages[0].content[0]"
