"""A checkpoint's preprocessor_config.json as transformers' Qwen2-VL image processor reads it.

Pure Python (no numpy, no Pillow): the page runs it in Pyodide. Defaults are those of
transformers' `Qwen2VLImageProcessorPil` (5.23) when a key is absent, so a sparse config means what
it means to transformers. Settings this runtime does not implement are refused, not ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.vision.errors import ImageInputError

PREPROCESSOR_FILE = "preprocessor_config.json"
# OpenAI CLIP's statistics: the class default (Qwen3-VL's and Qwen3.5's configs say 0.5 instead).
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_DEFAULT_SIZE = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280}
# PIL's resampling filters by number (PIL.Image.Resampling); transformers passes the number through.
RESAMPLING = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
MAX_ASPECT_RATIO = 200  # transformers' smart_resize refuses more elongated images


@dataclass(frozen=True)
class ImageProcessorSpec:
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int
    resample: int  # a PIL resampling filter number (3: bicubic)
    do_rescale: bool
    rescale_factor: float
    do_normalize: bool
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    @property
    def factor(self) -> int:
        """Resized sides are multiples of this: patch x merge."""
        return self.patch_size * self.merge_size

    @property
    def patch_dim(self) -> int:
        """Values per row of pixel_values: 3 channels x T x P x P."""
        return 3 * self.temporal_patch_size * self.patch_size**2

    def grid_thw(self, height: int, width: int) -> tuple[int, int, int]:
        """The image_grid_thw row of an image resized to height x width: one temporal step."""
        return 1, height // self.patch_size, width // self.patch_size

    def num_tokens(self, height: int, width: int) -> int:
        """Merged image tokens (image-pad tokens in the prompt) of an image resized to height x width."""
        _, grid_h, grid_w = self.grid_thw(height, width)
        return grid_h * grid_w // self.merge_size**2

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def min_cap(self) -> int:
        """The smallest per-image token cap allowed: at least the processor's minimum, and at least
        MAX_ASPECT_RATIO, below which smart_resize clamps a thin image's short side up to one factor
        and the result exceeds the cap (and is no longer its own smart_resize)."""
        return max(MAX_ASPECT_RATIO, -(-self.min_pixels // self.factor**2))

    def capped(self, max_tokens: int) -> ImageProcessorSpec:
        """These settings with at most `max_tokens` merged tokens per image: `max_pixels` lowered to
        max_tokens x factor^2, which is what transformers' processor given that max_pixels does.
        ImageInputError below min_cap()."""
        if max_tokens < self.min_cap():
            raise ImageInputError(
                f"the image-token limit per image must be at least {self.min_cap()} for this model, "
                f"got {max_tokens}"
            )
        return replace(self, max_pixels=min(self.max_pixels, max_tokens * self.factor**2))


def smart_resize(height: int, width: int, spec: ImageProcessorSpec) -> tuple[int, int]:
    """transformers' smart_resize: sides rounded to multiples of patch x merge, the pixel count kept
    within [min_pixels, max_pixels], the aspect ratio as close as those allow. Python's round is
    half-to-even, as in transformers."""
    if height <= 0 or width <= 0:
        raise ImageInputError(f"no pixels ({width}x{height})")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ImageInputError(
            f"too elongated ({width}x{height}): the aspect ratio must be at most {MAX_ASPECT_RATIO}"
        )
    factor = spec.factor
    new_h, new_w = round(height / factor) * factor, round(width / factor) * factor
    if new_h * new_w > spec.max_pixels:
        beta = math.sqrt(height * width / spec.max_pixels)
        new_h = max(factor, math.floor(height / beta / factor) * factor)
        new_w = max(factor, math.floor(width / beta / factor) * factor)
    elif new_h * new_w < spec.min_pixels:
        beta = math.sqrt(spec.min_pixels / (height * width))
        new_h = math.ceil(height * beta / factor) * factor
        new_w = math.ceil(width * beta / factor) * factor
    return new_h, new_w


def _int(config: dict[str, Any], name: str, default: int) -> int:
    value = config.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BundleError(f"{PREPROCESSOR_FILE}: {name} must be a positive integer, got {value!r}")
    return value


def _triple(config: dict[str, Any], name: str, default: tuple[float, ...]) -> tuple[float, float, float]:
    value = config.get(name, default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value] * 3
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise BundleError(f"{PREPROCESSOR_FILE}: {name} must be a number or 3 numbers, got {value!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise BundleError(f"{PREPROCESSOR_FILE}: {name} must be numbers, got {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def _pixel_limits(config: dict[str, Any]) -> tuple[int, int]:
    """(min_pixels, max_pixels): `size` {shortest_edge, longest_edge}, overridden by min/max_pixels."""
    size = config.get("size")
    size = dict(_DEFAULT_SIZE) if size is None else size
    if not isinstance(size, dict):
        raise BundleError(f"{PREPROCESSOR_FILE}: size must be an object, got {size!r}")
    limits: list[int] = []
    for key, override in (("shortest_edge", "min_pixels"), ("longest_edge", "max_pixels")):
        value = config.get(override, size.get(key))
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise BundleError(f"{PREPROCESSOR_FILE}: size.{key} must be a positive integer, got {value!r}")
        limits.append(value)
    if limits[0] > limits[1]:
        raise BundleError(f"{PREPROCESSOR_FILE}: the minimum pixel count exceeds the maximum")
    return limits[0], limits[1]


def _check_supported(config: dict[str, Any]) -> None:
    for flag in ("do_resize", "do_convert_rgb"):
        if config.get(flag, True) is not True:
            raise BundleError(f"{PREPROCESSOR_FILE}: {flag}={config[flag]!r} is not supported (only true)")
    if config.get("do_center_crop") or config.get("do_pad"):
        raise BundleError(
            f"{PREPROCESSOR_FILE}: center crop and padding are not part of Qwen2-VL's processor"
        )


def spec_from_preprocessor_config(config: dict[str, Any]) -> ImageProcessorSpec:
    if not isinstance(config, dict):
        raise BundleError(f"{PREPROCESSOR_FILE} does not hold a JSON object")
    _check_supported(config)
    resample = config.get("resample", 3)
    if resample not in RESAMPLING or isinstance(resample, bool):
        raise BundleError(f"{PREPROCESSOR_FILE}: resample {resample!r} is not a PIL resampling filter (0-5)")
    rescale_factor = config.get("rescale_factor", 1 / 255)
    if not isinstance(rescale_factor, int | float) or isinstance(rescale_factor, bool):
        raise BundleError(f"{PREPROCESSOR_FILE}: rescale_factor must be a number, got {rescale_factor!r}")
    std = _triple(config, "image_std", _CLIP_STD)
    if 0.0 in std:
        raise BundleError(f"{PREPROCESSOR_FILE}: image_std must not be 0")
    min_pixels, max_pixels = _pixel_limits(config)
    return ImageProcessorSpec(
        patch_size=_int(config, "patch_size", 14),
        temporal_patch_size=_int(config, "temporal_patch_size", 2),
        merge_size=_int(config, "merge_size", 2),
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        resample=resample,
        do_rescale=bool(config.get("do_rescale", True)),
        rescale_factor=float(rescale_factor),
        do_normalize=bool(config.get("do_normalize", True)),
        image_mean=_triple(config, "image_mean", _CLIP_MEAN),
        image_std=std,
    )


def read_preprocessor_config(model_dir: Path) -> ImageProcessorSpec:
    path = model_dir / PREPROCESSOR_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing: a vision model needs its image processor's settings") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path} is not valid JSON ({err})") from None
    return spec_from_preprocessor_config(config)
