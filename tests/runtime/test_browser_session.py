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
        second = await _session(bundle)
        restored = json.loads(second.restore_conversation(JsBytes(blob)))
        follow = [*restored["messages"], {"role": "user", "content": "And then?"}]
        again, _ = await _generate(second, {"messages": follow, "chat": True, **GREEDY})
        await first.runtime.close()
        await second.runtime.close()
        return history, restored, again

    history, restored, again = run_async(go())
    assert restored["messages"] == history and restored["tokens"] > 0
    assert again["reusedTokens"] > 0
