"""The images a loaded model has been given: registered once, named by their pixels, encoded lazily.

An image enters as RGB bytes already at the model's size (natively Pillow resizes it, in the page the
browser does) and is named by the sha256 of its size and pixels. Chat messages refer to it by that
id, so a conversation (and a saved one) names its images without carrying them in every message.
Its features — the patchify graph, then the vision graph — are computed only when a prompt needs
them: a turn whose image tokens the prefix cache already holds does no vision work at all. The
features of the most recent images are kept (a regenerated reply needs them again).

Stdlib only: the page runs it in Pyodide.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from qwen35web.runtime.bundle_vision import VisionInfo
from qwen35web.runtime.engine import Engine
from qwen35web.runtime.vision.errors import ImageInputError
from qwen35web.runtime.vision.limits import ImageTokenLimits, backend_of, check_prompt_tokens
from qwen35web.runtime.vision.patchify import PATCHIFY_INPUT, PATCHIFY_OUTPUT
from qwen35web.runtime.vision.processor_config import ImageProcessorSpec, smart_resize
from qwen35web.runtime.vision.resized import ResizedImage

VISION_ROLE, PATCHIFY_ROLE = "vision", "patchify"
PIXEL_VALUES, IMAGE_GRID_THW, IMAGE_FEATURES = "pixel_values", "image_grid_thw", "image_features"
KEPT_FEATURES = 8  # images whose features stay in memory (0.8B, 448x448: 196 x 1024 fp32 = 0.8 MB each)


@dataclass(frozen=True)
class PreparedImage:
    image: ResizedImage
    image_id: str  # sha256 hex of (height, width, rgb)
    grid_h: int  # merged tokens down and across
    grid_w: int

    @property
    def num_tokens(self) -> int:
        return self.grid_h * self.grid_w

    @property
    def key(self) -> int:
        """What the prefix cache sees in place of this image's pad tokens: negative (no token id is),
        and different for different pixels, so a cached state is never reused for another image."""
        return -1 - int(self.image_id[:15], 16)


def image_id_of(height: int, width: int, rgb: bytes) -> str:
    return hashlib.sha256(struct.pack("<II", height, width) + rgb).hexdigest()


def prepared(image: ResizedImage, spec: ImageProcessorSpec) -> PreparedImage:
    """Checks that `image` is at a size the processor would have resized it to (`spec` carries the
    image-token cap: an image above it is refused), and names it."""
    height, width = image.height, image.width
    if len(image.rgb) != height * width * 3:
        raise ImageInputError(
            f"the image data has {len(image.rgb)} bytes; {width}x{height} RGB needs {height * width * 3}"
        )
    if smart_resize(height, width, spec) != (height, width):
        raise ImageInputError(
            f"a {width}x{height} image is not at the model's size (sides multiples of {spec.factor}, "
            f"{spec.min_pixels}..{spec.max_pixels} pixels, at most {spec.max_pixels // spec.factor**2} "
            "image tokens): resize it first"
        )
    _, grid_h, grid_w = spec.grid_thw(height, width)
    merge = spec.merge_size
    return PreparedImage(image, image_id_of(height, width, image.rgb), grid_h // merge, grid_w // merge)


class ImageStore:
    """The registered images of one runtime, and the features of the most recent ones."""

    def __init__(
        self,
        engine: Engine,
        vision: VisionInfo,
        hidden: int,
        max_image_tokens: int | None = None,
        max_prompt_image_tokens: int | None = None,
    ):
        self.engine = engine
        self.vision = vision
        self.vision_hidden = hidden  # features per image token: the text model's width
        defaults = vision.token_limits[backend_of(engine.name)]
        self.limits: ImageTokenLimits = defaults.with_overrides(max_image_tokens, max_prompt_image_tokens)
        # The processor's settings with this backend's cap: every resize (native and page) uses these.
        self.spec = vision.image_spec().capped(self.limits.per_image)
        self.images: dict[str, PreparedImage] = {}
        self.features: OrderedDict[str, bytes] = OrderedDict()  # image id -> float32 [tokens, hidden]
        self.encoded = 0  # images run through the vision graph so far (tests and stats)
        # Told when an image's vision work starts ("start", None) and ends ("done", milliseconds):
        # the page shows it while the prefill waits.
        self.on_encode: Callable[[str, float | None], None] | None = None

    def add(self, image: ResizedImage) -> PreparedImage:
        entry = prepared(image, self.spec)
        self.images.setdefault(entry.image_id, entry)
        return self.images[entry.image_id]

    def check_prompt(self, images: list[PreparedImage]) -> None:
        """ImageInputError when these images together exceed the per-prompt cap."""
        check_prompt_tokens([image.num_tokens for image in images], self.limits.per_prompt)

    def get(self, image_id: str) -> PreparedImage:
        entry = self.images.get(image_id)
        if entry is None:
            raise ImageInputError(f"no image with id {image_id[:12]}... was added to this model")
        return entry

    async def features_of(self, entry: PreparedImage) -> bytes:
        """float32 [num_tokens, hidden] bytes, row-major: from the kept ones or the vision graph."""
        kept = self.features.get(entry.image_id)
        if kept is None:
            started = time.perf_counter()
            self._tell("start", None)
            kept = await self._encode(entry.image)
            self._tell("done", (time.perf_counter() - started) * 1000)
            self.encoded += 1
            self.features[entry.image_id] = kept
            while len(self.features) > KEPT_FEATURES:
                self.features.popitem(last=False)
        self.features.move_to_end(entry.image_id)
        return kept

    def _tell(self, state: str, ms: float | None) -> None:
        if self.on_encode is not None:
            self.on_encode(state, ms)

    async def _encode(self, image: ResizedImage) -> bytes:
        engine = self.engine
        pixels = engine.from_bytes("uint8", [image.height, image.width, 3], image.rgb)
        patches = (await engine.run(PATCHIFY_ROLE, {PATCHIFY_INPUT: pixels}, [PATCHIFY_OUTPUT]))[
            PATCHIFY_OUTPUT
        ]
        grid = engine.int64(list(self.spec.grid_thw(image.height, image.width)), [1, 3])
        outputs = await engine.run(
            VISION_ROLE, {PIXEL_VALUES: patches, IMAGE_GRID_THW: grid}, [IMAGE_FEATURES]
        )
        features = outputs[IMAGE_FEATURES]
        try:
            _, _, data = await engine.to_bytes(features)
        finally:
            for tensor in (pixels, patches, grid, features):
                engine.release(tensor)
        return data
