"""Saved conversations: a bit-exact round trip, and every bad file refused with one sentence and
nothing restored."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from qwen35web.runtime import conversation_file
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.conversation_file import SavedConversation, SavedConversationError, decode, encode
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.saved_conversation import capture, load_file, save_file
from tests.run_async import run_async
from tests.runtime.tool_fixtures import TOOLS

PARAMS = SamplingParams(greedy=True, max_new_tokens=12)
TURNS = ["Hello there", "What is json?"]
NEXT = "And pathlib?"


async def _two_turns(bundle: Path):
    runtime = await open_native(bundle)
    conversation = Conversation(runtime, system="Be brief.")
    for text in TURNS:
        await conversation.say(text, PARAMS)
    return runtime, conversation


@pytest.fixture(scope="module")
def saved(export_bundle, tmp_path_factory) -> tuple[Path, dict]:
    """A two-turn conversation saved to a file, and what its next turn gives without saving."""

    async def go():
        runtime, conversation = await _two_turns(export_bundle("text", "fused"))
        path = tmp_path_factory.mktemp("chats") / "chat.q35"
        await save_file(runtime, conversation.messages, path)
        captured = await capture(runtime, conversation.messages)
        following = await conversation.say(NEXT, PARAMS)
        await runtime.close()
        return path, {"captured": captured, "next": following, "messages": conversation.messages}

    return run_async(go())


def test_round_trip_is_bit_exact_and_the_next_turn_prefills_only_itself(saved, export_bundle):
    path, original = saved

    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        conversation = Conversation(runtime, messages=load_file(runtime, path))
        restored = [np.array(t).copy() for t in runtime.runner.states]
        ids = list(runtime.runner.token_ids)
        result = await conversation.say(NEXT, PARAMS)
        await runtime.close()
        return ids, restored, result, conversation.messages

    ids, restored, result, messages = run_async(go())
    captured: SavedConversation = original["captured"]
    assert ids == captured.token_ids and len(ids) > 0
    for tensor, state in zip(captured.tensors, restored, strict=True):
        assert state.dtype.name == tensor.dtype and list(state.shape) == tensor.shape
        assert state.tobytes() == tensor.data  # bit for bit
    assert result.tokens == original["next"].tokens
    assert result.reused_tokens == len(ids)
    assert result.prefilled_tokens == result.prompt_tokens - len(ids)
    assert messages == original["messages"]


def _rewrite(blob: bytes, **changes) -> bytes:
    """A well-formed file (valid checksum) with header fields changed."""
    saved = decode(blob)
    for key, value in changes.items():
        setattr(saved, key, value(saved) if callable(value) else value)
    return encode(saved)


def _newer_version(blob: bytes) -> bytes:
    body = blob[:8] + struct.pack("<I", conversation_file.FORMAT_VERSION + 1) + blob[12:-32]
    return body + hashlib.sha256(body).digest()


def _flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x10]) + blob[at + 1 :]


def _wrong_shape(saved: SavedConversation):
    tensors = list(saved.tensors)
    first = tensors[0]
    tensors[0] = conversation_file.SavedTensor(first.name, first.dtype, [1, len(first.data) // 4], first.data)
    return tensors


BAD_FILES = {
    "empty": (lambda b: b"", "not a saved qwen35web conversation"),
    "not-ours": (lambda b: b"PK\x03\x04" + b"\x00" * 100, "not a saved qwen35web conversation"),
    "truncated-prefix": (lambda b: b[:14], "truncated"),
    "truncated-half": (lambda b: b[: len(b) // 2], "truncated or corrupted"),
    "truncated-checksum": (lambda b: b[:-1], "truncated or corrupted"),
    "corrupted-data": (lambda b: _flip(b, len(b) - 100), "truncated or corrupted"),
    "corrupted-header": (lambda b: _flip(b, 30), "truncated or corrupted"),
    "newer-version": (_newer_version, "newer qwen35web"),
    "other-bundle": (lambda b: _rewrite(b, bundle_sha256="0" * 64), "another bundle"),
    "other-dtype": (lambda b: _rewrite(b, bundle_dtype="q4"), "q4 bundle"),
    "missing-tensor": (lambda b: _rewrite(b, tensors=lambda s: s.tensors[:-1]), "not this bundle's states"),
    "wrong-shape": (lambda b: _rewrite(b, tensors=_wrong_shape), "this bundle expects"),
    "ids-beyond-vocab": (lambda b: _rewrite(b, token_ids=lambda s: [10**6] * len(s.token_ids)), "vocabulary"),
    "ids-not-kv-length": (lambda b: _rewrite(b, token_ids=lambda s: s.token_ids[:-1]), "this bundle expects"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_restore_nothing(saved, export_bundle, tmp_path, case):
    path, _ = saved
    damage, message = BAD_FILES[case]
    bad = tmp_path / "bad.q35"
    bad.write_bytes(damage(path.read_bytes()))

    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        await runtime.generate([5, 6, 7], PARAMS)
        before = (list(runtime.runner.token_ids), len(runtime.cache.kept))
        try:
            with pytest.raises(SavedConversationError) as caught:
                load_file(runtime, bad)
            after = (list(runtime.runner.token_ids), len(runtime.cache.kept))
        finally:
            await runtime.close()
        return caught.value, before, after

    error, before, after = run_async(go())
    assert message in str(error) and str(bad) in str(error)
    assert "\n" not in str(error)
    assert after == before


def test_a_file_of_another_bundle_is_refused(saved, export_bundle):
    path, _ = saved

    async def go():
        runtime = await open_native(export_bundle("text", "portable"))
        try:
            load_file(runtime, path)
        finally:
            await runtime.close()

    with pytest.raises(SavedConversationError, match="another bundle"):
        run_async(go())


def test_a_missing_file_is_one_sentence(export_bundle, tmp_path):
    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        try:
            load_file(runtime, tmp_path / "nope.q35")
        finally:
            await runtime.close()

    with pytest.raises(SavedConversationError, match="cannot read"):
        run_async(go())


def _openai_shaped(messages: list[dict]) -> list[dict]:
    """Messages as the page keeps them: calls' arguments as JSON text, content None beside calls."""
    shaped = []
    for message in messages:
        if message.get("tool_calls"):
            calls = [
                {
                    **call,
                    "function": {**call["function"], "arguments": json.dumps(call["function"]["arguments"])},
                }
                for call in message["tool_calls"]
            ]
            message = {**message, "tool_calls": calls, "content": message.get("content") or None}
        shaped.append(message)
    return shaped


def test_tool_turns_and_their_tools_are_saved_and_the_next_turn_reuses_the_state(export_bundle, tmp_path):
    """A forced call, its result and the reply after it: saved with the tools (the prompt holds them),
    restored with the calls kept, and the next turn prefills only itself, as it would have unsaved."""
    bundle = export_bundle("text", "fused")
    path = tmp_path / "tools.q35"

    async def original():
        runtime = await open_native(bundle)
        conversation = Conversation(runtime, tools=TOOLS)
        choice = {"type": "function", "function": {"name": "now"}}
        call_params = SamplingParams(greedy=True, max_new_tokens=64)  # room for the whole call
        first = await conversation.say("What time is it?", call_params, tool_choice=choice)
        assert first.tool_calls and first.tool_calls[0].error is None, first
        conversation.add_tool_result(first.tool_calls[0].id, '{"time": "12:00"}')
        async for _ in conversation.reply(PARAMS):
            pass
        await save_file(runtime, conversation.messages, path, TOOLS)
        page_shaped = await capture(runtime, _openai_shaped(conversation.messages), TOOLS)
        saved_messages = list(conversation.messages)
        following = await conversation.say(NEXT, PARAMS)
        await runtime.close()
        return saved_messages, page_shaped, following

    async def restored():
        runtime = await open_native(bundle)
        saved = decode(path.read_bytes())
        conversation = Conversation(runtime, messages=load_file(runtime, path), tools=saved.tools)
        result = await conversation.say(NEXT, PARAMS)
        await runtime.close()
        return saved, result

    messages, page_shaped, following = run_async(original())
    saved, result = run_async(restored())
    assert [m["role"] for m in saved.messages] == ["user", "assistant", "tool", "assistant"]
    assert saved.messages == messages and saved.messages[1]["tool_calls"][0]["function"]["name"] == "now"
    assert saved.tools == TOOLS and len(saved.token_ids) > 0
    assert page_shaped.token_ids == saved.token_ids  # JSON-text arguments render the same
    assert result.reused_tokens == len(saved.token_ids) == following.reused_tokens
    assert result.tokens == following.tokens
