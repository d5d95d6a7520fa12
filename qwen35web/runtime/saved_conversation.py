"""Save a conversation with the state its next turn continues from; restore it without a prefill.

The state saved is the one the next turn would resume from: the longest kept state (or the
runner's current state) that prefixes the conversation rendered with one more user turn. That is
the end of the last reply when the template re-renders it as it was generated, else the end of the
conversation before it (Qwen's templates re-render past replies without their reasoning).
Tool turns (assistant `tool_calls`, `tool` results) are kept as they are; the tools the conversation
was rendered with are saved beside the messages (they are part of the prompt, so the state needs them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qwen35web.runtime.chat import Message
from qwen35web.runtime.conversation_file import (
    SavedConversation,
    SavedConversationError,
    SavedTensor,
    as_bytes,
    check_fits,
    decode,
    encode,
)
from qwen35web.runtime.engine import Tensor
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.prefix_cache import is_prefix, past_axes
from qwen35web.runtime.tools import normalize_messages
from qwen35web.runtime.vision.errors import ImageInputError
from qwen35web.runtime.vision.images import image_id_of, prepared
from qwen35web.runtime.vision.prompt import image_ids_in
from qwen35web.runtime.vision.resized import ResizedImage

logger = logging.getLogger(__name__)

_PROBE_USER_TURN = {"role": "user", "content": "next"}  # any text: the prefix ends before it


def _resume_point(
    runtime: Runtime, messages: list[Message], tools: list[dict[str, Any]] | None
) -> tuple[tuple[int, ...], list[Tensor], int]:
    """(token ids, state tensors, past length the KV tensors hold) the next turn would resume from."""
    if not messages:
        return (), [], 0
    # As a turn renders them: calls' arguments as dicts (OpenAI's JSON strings in the page), the tools.
    probe_messages = normalize_messages([*messages, _PROBE_USER_TURN])
    rendered = runtime.prompt(messages=probe_messages, tools=tools or None)
    probe = rendered.ids if rendered.images is None else rendered.images.keys  # keys name the images
    runner = runtime.runner
    current = tuple(runner.token_ids)
    best = runtime.cache.best(probe) if runtime.cache is not None else None
    current_fits = bool(current) and is_prefix(current, probe) and len(current) < len(probe)
    if current_fits and (best is None or best.length <= len(current)):
        return current, list(runner.states), len(current)
    if best is None:
        return (), [], 0
    return best.token_ids, list(best.states), best.kv_tensor_len


async def capture(
    runtime: Runtime, messages: list[Message], tools: list[dict[str, Any]] | None = None
) -> SavedConversation:
    """The conversation (`tools`: those its turns were rendered with) and the state its next turn
    resumes from."""
    ids, states, kv_len = _resume_point(runtime, messages, tools)
    engine = runtime.runner.engine
    axes = runtime.cache.seq_axes if runtime.cache is not None else [None] * len(states)
    tensors = []
    for spec, tensor, axis in zip(runtime.runner.state_specs, states, axes, strict=False):
        if axis is not None and kv_len > len(ids):  # a KV shared with a longer kept state: cut it
            cut = engine.cut(tensor, axis, len(ids))
            assert cut is not None, "only cuttable KV is ever shared"
            dtype, dims, data = await engine.to_bytes(cut)
            engine.release(cut)
        else:
            dtype, dims, data = await engine.to_bytes(tensor)
        tensors.append(SavedTensor(spec.name, dtype, dims, data))
    if messages and not ids:
        logger.info("no kept state prefixes this conversation: it is saved without one")
    return SavedConversation(
        runtime.manifest_sha256,
        runtime.manifest.dtype,
        list(messages),
        list(ids),
        tensors,
        _images_of(runtime, messages),
        _next_position(runtime, ids),
        list(tools) if tools else None,
    )


def _images_of(runtime: Runtime, messages: list[Message]) -> list[SavedTensor]:
    """The pixels of the images the messages name (at the model's size), once each."""
    saved: dict[str, SavedTensor] = {}
    for image_id in image_ids_in(messages):
        image = runtime.image_store().get(image_id).image
        saved.setdefault(image_id, SavedTensor(image_id, "uint8", [image.height, image.width, 3], image.rgb))
    return list(saved.values())


def _next_position(runtime: Runtime, ids: tuple[int, ...]) -> int | None:
    """Where the saved state's positions continue: past an image, more than its token count."""
    runner = runtime.runner
    if ids and tuple(runner.token_ids) == ids:
        return runner.next_position
    kept = next((s for s in runtime.cache.kept if s.token_ids == ids), None) if runtime.cache else None
    return kept.next_position if kept is not None else None


def restore(runtime: Runtime, saved: SavedConversation) -> list[Message]:
    """Load the saved state into the runtime (after every check passed); returns the messages."""
    specs = runtime.runner.state_specs
    check_fits(saved, runtime.manifest, runtime.manifest_sha256, specs, past_axes(specs))
    _check_images(runtime, saved)
    for image in saved.images:
        height, width, _ = image.shape
        runtime.add_image_rgb(height, width, as_bytes(image.data))
    if saved.tensors:
        engine = runtime.runner.engine
        states = [engine.from_bytes(t.dtype, t.shape, t.data) for t in saved.tensors]
        runtime.runner.load_state(states, None, saved.token_ids, saved.next_position)
        if runtime.cache is not None:
            runtime.cache.remember("restored")
    return list(saved.messages)


def _check_images(runtime: Runtime, saved: SavedConversation) -> None:
    """Every image the messages name is in the file, intact, and this bundle takes images."""
    named = set(image_ids_in(saved.messages))
    if not named and not saved.images:
        return
    if runtime.images is None:
        raise SavedConversationError("it holds images and this bundle has no vision graph")
    carried = {image.name: image for image in saved.images}
    if named - set(carried):
        raise SavedConversationError("corrupted (its messages name images it does not carry)")
    for image_id, image in carried.items():
        height, width, _ = image.shape
        pixels = as_bytes(image.data)
        if image_id_of(height, width, pixels) != image_id:
            raise SavedConversationError("corrupted (an image's pixels do not match its id)")
        try:
            prepared(ResizedImage(height, width, pixels), runtime.images.spec)
        except ImageInputError as err:
            raise SavedConversationError(f"an image does not fit this bundle ({err})") from None


async def save_file(
    runtime: Runtime, messages: list[Message], path: Path, tools: list[dict[str, Any]] | None = None
) -> int:
    """Write the conversation to `path` (atomically: a failed write leaves the old file); bytes written."""
    blob = encode(await capture(runtime, messages, tools))
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(blob)
        partial.replace(path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise SavedConversationError(f"cannot write {path}: {err.strerror or err}") from None
    return len(blob)


def load_file(runtime: Runtime, path: Path) -> list[Message]:
    """Restore the conversation saved in `path`; one clear error and nothing restored if it does not fit."""
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise SavedConversationError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return restore(runtime, decode(blob))
    except SavedConversationError as err:
        raise SavedConversationError(f"{path}: {err}") from None
