"""The page's images: sizes, registration, and word of the vision graphs while they run.

The page decodes and resizes an image itself (web/static/images.js, Pillow's arithmetic) and asks here
first for the size it must resize to, so the sizing rule and its refusals live in Python only
(smart_resize, vision/resized.MAX_IMAGE_PIXELS). The image store encodes images lazily, inside the prefill;
`VisionWatch` hears of each encoding so the page can show that the vision graph is running.
Stdlib only (Pyodide).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.vision.errors import ImageInputError
from qwen35web.runtime.vision.resized import MAX_IMAGE_PIXELS

Report = Callable[[dict[str, Any]], None]


def _dimension(value: Any, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JS numbers arrive as floats
    if not isinstance(value, int) or isinstance(value, bool):
        raise ImageInputError(f"the image {name} must be a whole number, got {value!r}")
    return value


def target_size(runtime: Runtime, height: Any, width: Any) -> dict[str, int]:
    """{height, width} the page resizes a decoded height x width image to (ImageInputError if none)."""
    height, width = _dimension(height, "height"), _dimension(width, "width")
    if height > 0 and width > 0 and height * width > MAX_IMAGE_PIXELS:
        raise ImageInputError(
            f"too large ({width}x{height}): at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
        )
    new_height, new_width = runtime.image_target_size(height, width)
    return {"height": new_height, "width": new_width}


def add_rgb(runtime: Runtime, height: Any, width: Any, rgb: Any) -> dict[str, Any]:
    """Register the page's resized RGB bytes (a JS Uint8Array or bytes): {imageId, tokens}."""
    height, width = _dimension(height, "height"), _dimension(width, "width")
    data = rgb.to_bytes() if hasattr(rgb, "to_bytes") else bytes(rgb)
    image_id = runtime.add_image_rgb(height, width, data)
    return {"imageId": image_id, "tokens": runtime.image_store().get(image_id).num_tokens}


def vision_facts(runtime: Runtime) -> dict[str, Any] | None:
    """What the page needs to prepare images (None for a text-only bundle)."""
    if runtime.images is None:
        return None
    spec = runtime.images.spec
    return {
        "resample": spec.resample,
        "factor": spec.factor,
        "minPixels": spec.min_pixels,
        "maxPixels": spec.max_pixels,
        "maxImagePixels": MAX_IMAGE_PIXELS,
        "maxImageTokens": runtime.images.limits.per_image,
        "maxPromptImageTokens": runtime.images.limits.per_prompt,
    }


class VisionWatch:
    """Word of the image store's vision work for the generation in progress: each image that is
    encoded (reused ones are not) sends a start and a done event with its number and time."""

    def __init__(self) -> None:
        self.report: Report | None = None  # set for the generation in progress
        self.images = 0  # images started during it

    def watch(self, report: Report | None) -> None:
        self.report = report
        self.images = 0

    def __call__(self, state: str, ms: float | None) -> None:
        if state == "start":
            self.images += 1
        event: dict[str, Any] = {"phase": "vision", "state": state, "image": self.images}
        if ms is not None:
            event["ms"] = ms
        if self.report is not None:
            self.report(event)


def watch_vision(runtime: Runtime) -> VisionWatch | None:
    """A VisionWatch told of the runtime's image encodings (None: no vision graph)."""
    if runtime.images is None:
        return None
    watch = VisionWatch()
    runtime.images.on_encode = watch
    return watch
