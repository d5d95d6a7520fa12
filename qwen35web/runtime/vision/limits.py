"""How many merged image tokens an image, and a prompt, may bring: per backend, overridable.

A checkpoint's processor allows up to `longest_edge` pixels (Qwen3.5: 16,777,216, i.e. 16,384 merged
tokens and 65,536 patches per image). The vision graph's time grows with the square of an image's
patches and its memory linearly, so each backend gets a cap measured on it (bench/vision_table.py,
bench/results/vision_table.md): the cap lowers the processor's `max_pixels` to
`per_image * (patch * merge)^2`, so an image is resized exactly as transformers' processor resizes it
given that `max_pixels`. A prompt whose images together exceed `per_prompt` is refused with one line.

The export records the table in the manifest's vision section (`image_token_limits`); a bundle
without it gets DEFAULT_LIMITS. Stdlib only (the page runs it in Pyodide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.vision.errors import ImageInputError

BACKENDS = ("native", "wasm", "webgpu")
ENGINE_BACKENDS = {"cpu": "native"}  # engine.name -> the table's key (the web engines' names match)


@dataclass(frozen=True)
class ImageTokenLimits:
    per_image: int  # merged tokens (image-pad tokens) one image is resized to at most
    per_prompt: int  # merged tokens all images of one prompt may hold together

    def to_json(self) -> dict[str, int]:
        return {"per_image": self.per_image, "per_prompt": self.per_prompt}

    def with_overrides(self, per_image: int | None, per_prompt: int | None) -> ImageTokenLimits:
        """These limits with a user's choices (None keeps the default). Raises ImageInputError."""
        for name, value in (("image", per_image), ("prompt", per_prompt)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ImageInputError(
                    f"the image-token limit per {name} must be a positive integer, got {value!r}"
                )
        image = per_image if per_image is not None else self.per_image
        prompt = per_prompt if per_prompt is not None else max(self.per_prompt, image)
        return ImageTokenLimits(image, prompt)


# Chosen by measurement with the real 0.8B tower shape, fp32 (bench/results/vision_table.md). Memory
# is no longer what limits an image (the attention runs in blocks): at these caps the peak is about
# 1.4 GB natively and 1.5 GB in the wasm page, weights included. Time is: the graph's work grows with
# the square of the patches. Natively a 1080p screenshot keeps its full resolution (1920x1088: 2,040
# tokens, 8,160 patches; about 4 TFLOP, under a minute unloaded on 2 cores, 5-10 minutes with this
# machine's load of 12-16); the wasm page runs one thread several times slower, so images get half
# that (1,024 tokens: a 12 MP photo becomes 1152x864). WebGPU here is SwiftShader only, so it is not
# measurable: it gets the wasm caps until a real GPU is measured.
DEFAULT_LIMITS: dict[str, ImageTokenLimits] = {
    "native": ImageTokenLimits(per_image=2048, per_prompt=8192),
    "wasm": ImageTokenLimits(per_image=1024, per_prompt=4096),
    "webgpu": ImageTokenLimits(per_image=1024, per_prompt=4096),
}


def backend_of(engine_name: str) -> str:
    backend = ENGINE_BACKENDS.get(engine_name, engine_name)
    if backend not in BACKENDS:
        raise BundleError(f"no image-token limits for the backend {engine_name!r}")
    return backend


def limits_to_json(limits: dict[str, ImageTokenLimits]) -> dict[str, Any]:
    return {backend: limit.to_json() for backend, limit in limits.items()}


def limits_from_json(data: Any) -> dict[str, ImageTokenLimits]:
    """The manifest's `vision.image_token_limits` (absent: DEFAULT_LIMITS). Raises BundleError."""
    if data is None:
        return dict(DEFAULT_LIMITS)
    where = "manifest.json: 'vision.image_token_limits'"
    if not isinstance(data, dict) or set(data) != set(BACKENDS):
        raise BundleError(f"{where} must name exactly the backends {', '.join(BACKENDS)}")
    limits = {}
    for backend, entry in data.items():
        values = [entry.get(key) if isinstance(entry, dict) else None for key in ("per_image", "per_prompt")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise BundleError(f"{where}.{backend} needs positive integers per_image and per_prompt")
        limits[backend] = ImageTokenLimits(values[0], values[1])  # type: ignore[arg-type]
    return limits


def check_prompt_tokens(counts: list[int], limit: int) -> None:
    """ImageInputError when a prompt's images hold more merged tokens than `limit` together."""
    total = sum(counts)
    if total > limit:
        raise ImageInputError(
            f"the prompt's {len(counts)} images need {total} image tokens; at most {limit} per prompt "
            "(send fewer images, or raise the limit: --max-prompt-image-tokens, maxPromptImageTokens)"
        )
