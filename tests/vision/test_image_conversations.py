"""Conversations with images: later turns reuse the state (no vision work), exactly; another image of
the same size is never mistaken for a cached one; saved conversations carry their images; the chat
CLI takes JSON lines with images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qwen35web.export.pipeline import ExportOptions, run_export
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.conversation_file import SavedConversationError, decode, encode
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.saved_conversation import capture, restore
from tests.run_async import run_async

PARAMS = SamplingParams(greedy=True, max_new_tokens=5)


@pytest.fixture(scope="module")
def vl_bundle(vl_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vlconv") / "bundle"
    run_export(ExportOptions(model_dir=vl_checkpoint("tiny"), out_dir=out))
    return out


@pytest.fixture
def pictures(tmp_path) -> dict[str, Path]:
    rng = np.random.default_rng(5)
    paths = {}
    for name in ("x", "y"):  # the same size: the same number of image tokens, other pixels
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (41, 57, 3), dtype=np.uint8)).save(paths[name])
    return paths


async def _last_logits(runtime: Runtime) -> np.ndarray:
    return np.asarray(await runtime.runner.last_logits())


async def _fresh_turn(
    bundle: Path, history: list, text: str, images: list[Path], attach: bool
) -> tuple[list[int], np.ndarray]:
    """The same turn on a runtime that keeps no state: everything prefilled from scratch. `images`
    are added (the history's, or with `attach` this turn's)."""
    runtime = await open_native(bundle, kept_states_budget=0, prefill_chunk=16)
    try:
        ids = [runtime.add_image(p) for p in images]
        conversation = Conversation(runtime, messages=history)
        result = await conversation.say(text, PARAMS, image_ids=ids if attach else [])
        assert result.reused_tokens == 0
        return result.tokens, await _last_logits(runtime)
    finally:
        await runtime.close()


def test_second_turn_reuses_the_image_state_exactly(vl_bundle, pictures):
    async def run() -> None:
        runtime = await open_native(vl_bundle, prefill_chunk=16)
        try:
            conversation = Conversation(runtime)
            first = await conversation.say(
                "What is this?", PARAMS, image_ids=[runtime.add_image(pictures["x"])]
            )
            assert first.images_encoded == 1
            history = list(conversation.messages)
            second = await conversation.say("And the colours?", PARAMS)
            assert second.images_encoded == 0  # the image's tokens came from the kept state
            assert second.reused_tokens > 0 and second.prefilled_tokens < second.prompt_tokens // 2
            logits = await _last_logits(runtime)
        finally:
            await runtime.close()
        tokens, fresh_logits = await _fresh_turn(
            vl_bundle, history, "And the colours?", [pictures["x"]], False
        )
        assert second.tokens == tokens
        assert float(np.abs(logits - fresh_logits).max()) <= 1e-5

    run_async(run())


def test_another_image_of_the_same_size_is_not_reused(vl_bundle, pictures):
    async def run() -> None:
        runtime = await open_native(vl_bundle, prefill_chunk=16)
        try:
            conversation = Conversation(runtime)
            await conversation.say("Describe it.", PARAMS, image_ids=[runtime.add_image(pictures["x"])])
            conversation.reset()
            other = await conversation.say(
                "Describe it.", PARAMS, image_ids=[runtime.add_image(pictures["y"])]
            )
            logits = await _last_logits(runtime)
        finally:
            await runtime.close()
        assert other.images_encoded == 1
        ids_before_image = other.prompt_tokens - other.prefilled_tokens
        assert ids_before_image < 8  # at most the text before the image: "<|im_start|>user\n<|vision_start|>"
        tokens, fresh_logits = await _fresh_turn(vl_bundle, [], "Describe it.", [pictures["y"]], True)
        assert other.tokens == tokens
        assert float(np.abs(logits - fresh_logits).max()) <= 1e-5

    run_async(run())


def test_saved_conversation_carries_its_images(vl_bundle, pictures):
    async def run() -> None:
        first = await open_native(vl_bundle, prefill_chunk=16)
        try:
            conversation = Conversation(first)
            await conversation.say("What is this?", PARAMS, image_ids=[first.add_image(pictures["x"])])
            blob = encode(await capture(first, conversation.messages))
            continued = await conversation.say("Again?", PARAMS)
        finally:
            await first.close()
        second = await open_native(vl_bundle, prefill_chunk=16)
        try:
            messages = restore(second, decode(blob))
            resumed = await Conversation(second, messages=messages).say("Again?", PARAMS)
        finally:
            await second.close()
        assert resumed.images_encoded == 0 and resumed.reused_tokens > 0
        assert resumed.tokens == continued.tokens

    run_async(run())


def test_saved_conversation_missing_an_image_restores_nothing(vl_bundle, pictures):
    async def run() -> None:
        runtime = await open_native(vl_bundle, prefill_chunk=16)
        try:
            conversation = Conversation(runtime)
            await conversation.say("What is this?", PARAMS, image_ids=[runtime.add_image(pictures["x"])])
            saved = await capture(runtime, conversation.messages)
            saved.images = []
            other = await open_native(vl_bundle, prefill_chunk=16)
            try:
                with pytest.raises(SavedConversationError, match=r"carries no images|does not carry"):
                    restore(other, decode(encode(saved)))
                assert other.runner.token_ids == [] and other.images is not None and not other.images.images
            finally:
                await other.close()
        finally:
            await runtime.close()

    run_async(run())


def _chat(bundle: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qwen35web", "chat", str(bundle), "--json", "--greedy", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=300)


def test_chat_cli_json_lines_with_images(vl_bundle, pictures):
    lines = [json.dumps({"content": "What is this?", "images": [str(pictures["x"])]}), "Tell me more."]
    done = _chat(vl_bundle, "\n".join(lines) + "\n", "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first["images_encoded"] == 1 and second["images_encoded"] == 0
    assert second["reused_tokens"] > first["prompt_tokens"] // 2


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"images": ["a.png"]}', "a JSON message line must be"),
        ('{"content": "hi", "images": "a.png"}', "a JSON message line must be"),
        ('{"content": "hi", "images": ["missing.png"]}', "no such file"),
    ],
)
def test_chat_cli_bad_image_lines(vl_bundle, line, message):
    done = _chat(vl_bundle, line + "\n")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert message in lines[0]
