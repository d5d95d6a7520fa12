"""A chat prompt with images: pad expansion, MRoPE positions, prefix-cache keys, per-chunk features.

As transformers' Qwen3.5 processor and `get_rope_index` do it: the template renders each image as
<|vision_start|><|image_pad|><|vision_end|> and the single pad is repeated once per merged image
token before tokenising. Text positions count on; an image's tokens take `grid_positions` at the
next position (over its merged grid), and the text after it continues one past the largest. Decode
positions continue from there, which is transformers' cache position + rope delta.

Messages name their images by id (`{"type": "image", "image_id": ...}` in a user message's content
list, before or between text parts); the ids resolve in the runtime's ImageStore.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qwen35web.runtime import graph_io as io
from qwen35web.runtime.bundle_vision import IMAGE_PAD
from qwen35web.runtime.chat import Message
from qwen35web.runtime.engine import Engine, Tensor
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.vision.images import ImageStore, PreparedImage

if TYPE_CHECKING:
    from qwen35web.runtime.runner import ModelRunner

IMAGE_PART = "image"


def image_message(text: str, image_ids: Sequence[str]) -> Message:
    """One user message: the images first, then the text (as transformers' examples order them)."""
    if not image_ids:
        return {"role": "user", "content": text}
    content: list[dict[str, Any]] = [{"type": IMAGE_PART, "image_id": i} for i in image_ids]
    return {"role": "user", "content": [*content, {"type": "text", "text": text}]}


def image_ids_in(messages: Sequence[Message]) -> list[str]:
    """The image ids the messages refer to, in the order the template renders them."""
    ids = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == IMAGE_PART:
                    image_id = part.get("image_id")
                    if not isinstance(image_id, str):
                        raise GenerationInputError("an image part of a message needs an image_id")
                    ids.append(image_id)
    return ids


def expand_image_pads(rendered: str, images: Sequence[PreparedImage]) -> str:
    """Each image's single <|image_pad|> repeated once per merged token, in order."""
    pieces = rendered.split(IMAGE_PAD)
    if len(pieces) - 1 != len(images):
        raise GenerationInputError(
            f"the chat template rendered {len(pieces) - 1} image slots for {len(images)} images"
        )
    out = [pieces[0]]
    for image, piece in zip(images, pieces[1:], strict=True):
        out.append(IMAGE_PAD * image.num_tokens + piece)
    return "".join(out)


@dataclass
class ImageSpan:
    start: int  # index of the image's first pad token in the prompt
    image: PreparedImage

    @property
    def end(self) -> int:
        return self.start + self.image.num_tokens


@dataclass
class ImagePrompt:
    """What a prompt with images adds to its ids: where each image sits and the MRoPE rows."""

    store: ImageStore  # where the images' features come from
    keys: list[int]  # the ids, each image's pad tokens replaced by its key (prefix-cache matching)
    positions: list[list[int]]  # [3][T]
    spans: list[ImageSpan] = field(default_factory=list)

    def positions_of(self, start: int, end: int) -> list[list[int]]:
        return [row[start:end] for row in self.positions]

    async def embeds_of(self, engine: Engine, start: int, end: int) -> Tensor:
        """float32 [N, hidden]: the features of the image tokens in ids[start:end], in order (only
        the images with tokens in that range are encoded). The caller releases the tensor."""
        store, width = self.store, self.store.vision_hidden
        pieces = []
        for span in self.spans:
            lo, hi = max(span.start, start), min(span.end, end)
            if lo < hi:
                features = await store.features_of(span.image)
                row = 4 * width
                pieces.append(features[(lo - span.start) * row : (hi - span.start) * row])
        data = b"".join(pieces)
        return engine.from_bytes("float32", [len(data) // (4 * width), width], data)


def image_prompt(ids: list[int], store: ImageStore, images: Sequence[PreparedImage]) -> ImagePrompt:
    """Keys and position rows [3][len(ids)] for a prompt whose images' pad runs appear in order."""
    rows: list[list[int]] = [[], [], []]
    keys: list[int] = []
    spans: list[ImageSpan] = []
    position, i, remaining = 0, 0, list(images)
    image_token_id = store.vision.image_token_id
    while i < len(ids):
        if ids[i] == image_token_id:
            if not remaining:
                raise GenerationInputError("the prompt has more image tokens than images")
            image = remaining.pop(0)
            if ids[i : i + image.num_tokens] != [image_token_id] * image.num_tokens:
                raise GenerationInputError("an image's tokens are not one run in the prompt")
            grid = io.grid_positions(position, image.grid_h, image.grid_w)
            spans.append(ImageSpan(i, image))
            keys.extend([image.key] * image.num_tokens)
            position += max(image.grid_h, image.grid_w)
            i += image.num_tokens
        else:
            grid = io.text_positions(position, 1)
            keys.append(ids[i])
            position, i = position + 1, i + 1
        for row, values in zip(rows, grid, strict=True):
            row.extend(values)
    if remaining:
        raise GenerationInputError("the prompt has fewer image tokens than images")
    return ImagePrompt(store, keys, rows, spans)


async def feed_chunk(
    runner: ModelRunner, ids: list[int], start: int, end: int, images: ImagePrompt | None
) -> None:
    """ids[start:end] through the runner: plain text, or with its slice of the MRoPE rows and the
    features of the image tokens it holds (an image may span chunks: its rows are cut to fit)."""
    if images is None:
        await runner.forward(ids[start:end])
        return
    embeds = await images.embeds_of(runner.engine, start, end)
    try:
        await runner.forward(ids[start:end], images.positions_of(start, end), embeds, images.keys[start:end])
    finally:
        runner.engine.release(embeds)
