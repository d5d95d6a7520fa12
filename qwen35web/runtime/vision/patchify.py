"""What the patchify graph needs and means, in pure Python (the page has no numpy).

The graph (built at export by `export.vision.patchify_graph`, file `vision_patchify.onnx`) takes
one resized image as uint8 [height, width, channels] (channels 3, or 4 with the alpha ignored, as
a browser's RGBA ImageData gives it) and returns its `pixel_values` float32
[height / P * width / P, 3 * T * P * P] in transformers' patch order. Each image is one run; the
runtime concatenates the rows of several images and their `image_grid_thw` rows.

The per-pixel arithmetic is a 3 x 256 table (`normalization_table`): uint8 value -> rescaled,
normalized float32, the same floats transformers computes.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from qwen35web.runtime.vision.processor_config import ImageProcessorSpec
from qwen35web.runtime.vision.resized import ResizedImage

PATCHIFY_FILE = "vision_patchify.onnx"
PATCHIFY_INPUT = "image"
PATCHIFY_OUTPUT = "pixel_values"


def _f32(value: float) -> float:
    """Round to float32. A float32 op computed in float64 then rounded once is the float32 op
    (53 >= 2 * 24 + 2 bits), so chained _f32 steps reproduce numpy's float32 arithmetic."""
    return array("f", [value])[0]


def normalization_table(spec: ImageProcessorSpec) -> list[float]:
    """[3 * 256] float32 values, channel-major: entry c * 256 + v is what value v of channel c becomes.

    transformers: rescale = float64(v) * factor cast to float32; normalize = (x - mean) / std in
    float32 with mean and std cast to float32.
    """
    table: list[float] = []
    for channel in range(3):
        mean, std = _f32(spec.image_mean[channel]), _f32(spec.image_std[channel])
        for value in range(256):
            x = _f32(value * spec.rescale_factor) if spec.do_rescale else float(value)
            table.append(_f32(_f32(x - mean) / std) if spec.do_normalize else x)
    return table


@dataclass(frozen=True)
class PatchifyFeed:
    """The graph's input for one image: uint8 bytes and their dims [height, width, 3]."""

    data: bytes
    dims: tuple[int, int, int]


def patchify_feed(image: ResizedImage) -> PatchifyFeed:
    return PatchifyFeed(image.rgb, (image.height, image.width, 3))


def image_grid_thw(images: list[ResizedImage], spec: ImageProcessorSpec) -> list[int]:
    """The vision graph's image_grid_thw int64 [len(images), 3], flattened row by row."""
    return [n for image in images for n in spec.grid_thw(image.height, image.width)]
