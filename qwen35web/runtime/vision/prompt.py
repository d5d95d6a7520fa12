"""A chat prompt with images: features from the vision graph, pad tokens, MRoPE positions.

As transformers' Qwen3.5 processor and `get_rope_index` do it: the user message holds the images
first, then the text; the template renders each image as <|vision_start|><|image_pad|><|vision_end|>
and the single pad is repeated once per merged image token before tokenising. Text positions count
on; an image's tokens take `grid_positions` at the next position (over its merged grid), and the
text after it continues one past the largest. Decode positions continue from there, which is
transformers' cache position + rope delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qwen35web.runtime import graph_io as io
from qwen35web.runtime.bundle_vision import IMAGE_PAD, VisionInfo
from qwen35web.runtime.engine import Engine, Tensor
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.vision.decode import ResizedImage
from qwen35web.runtime.vision.patchify import PATCHIFY_INPUT, PATCHIFY_OUTPUT

VISION_ROLE, PATCHIFY_ROLE = "vision", "patchify"
PIXEL_VALUES, IMAGE_GRID_THW, IMAGE_FEATURES = "pixel_values", "image_grid_thw", "image_features"


@dataclass(frozen=True)
class EncodedImage:
    grid_h: int  # merged tokens down and across
    grid_w: int
    features: list[float]  # [grid_h * grid_w, hidden], row-major

    @property
    def num_tokens(self) -> int:
        return self.grid_h * self.grid_w


@dataclass
class ImagePrefill:
    positions: list[list[int]]  # [3][T]
    embeds: Tensor  # [N, hidden] float32


async def encode_image(engine: Engine, vision: VisionInfo, image: ResizedImage) -> EncodedImage:
    """One image through the patchify graph and the vision graph."""
    spec = vision.image_spec()
    pixels = engine.from_bytes("uint8", [image.height, image.width, 3], image.rgb)
    patches = (await engine.run(PATCHIFY_ROLE, {PATCHIFY_INPUT: pixels}, [PATCHIFY_OUTPUT]))[PATCHIFY_OUTPUT]
    grid = engine.int64(list(spec.grid_thw(image.height, image.width)), [1, 3])
    feeds = {PIXEL_VALUES: patches, IMAGE_GRID_THW: grid}
    features = (await engine.run(VISION_ROLE, feeds, [IMAGE_FEATURES]))[IMAGE_FEATURES]
    values = [float(v) for v in await engine.read(features)]
    for tensor in (pixels, patches, grid, features):
        engine.release(tensor)
    _, grid_h, grid_w = spec.grid_thw(image.height, image.width)
    return EncodedImage(grid_h // spec.merge_size, grid_w // spec.merge_size, values)


def image_message(text: str, count: int) -> dict[str, Any]:
    """One user message: `count` images first, then the text (as transformers' examples order them)."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(count)]
    return {"role": "user", "content": [*content, {"type": "text", "text": text}]}


def expand_image_pads(rendered: str, images: list[EncodedImage]) -> str:
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


def mrope_positions(ids: list[int], image_token_id: int, images: list[EncodedImage]) -> list[list[int]]:
    """position_ids rows [3][len(ids)] for a prompt whose images' pad runs appear in order."""
    rows: list[list[int]] = [[], [], []]
    position, i, remaining = 0, 0, list(images)
    while i < len(ids):
        if ids[i] == image_token_id:
            if not remaining:
                raise GenerationInputError("the prompt has more image tokens than images")
            image = remaining.pop(0)
            if ids[i : i + image.num_tokens] != [image_token_id] * image.num_tokens:
                raise GenerationInputError("an image's tokens are not one run in the prompt")
            grid = io.grid_positions(position, image.grid_h, image.grid_w)
            position += max(image.grid_h, image.grid_w)
            i += image.num_tokens
        else:
            grid, position, i = io.text_positions(position, 1), position + 1, i + 1
        for row, values in zip(rows, grid, strict=True):
            row.extend(values)
    if remaining:
        raise GenerationInputError("the prompt has fewer image tokens than images")
    return rows


def image_prefill(
    engine: Engine, ids: list[int], vision: VisionInfo, images: list[EncodedImage]
) -> ImagePrefill:
    positions = mrope_positions(ids, vision.image_token_id, images)
    features = [v for image in images for v in image.features]
    width = len(features) // max(sum(image.num_tokens for image in images), 1)
    embeds = engine.float32(features, [sum(image.num_tokens for image in images), width])
    return ImagePrefill(positions, embeds)
