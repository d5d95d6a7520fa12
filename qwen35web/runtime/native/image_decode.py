"""Decode and resize natively with Pillow, exactly as transformers' PIL image processor does.

transformers (`Qwen2VLImageProcessorPil`, given a PIL image) converts to RGB first (an image with
alpha, or a palette with a transparent index, is composited onto white; other modes go through
Pillow's `convert("RGB")`), then resizes the 8-bit RGB image with `Image.resize(size, resample)` to
`smart_resize`'s size. Doing the same calls gives the same bytes. Files (paths and bytes) are also
turned upright by their EXIF orientation, as transformers' `load_image` and browsers do.

    prepare_image(source, spec) -> ResizedImage(height, width, rgb)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from qwen35web.runtime.vision.errors import ImageInputError
from qwen35web.runtime.vision.processor_config import ImageProcessorSpec, smart_resize
from qwen35web.runtime.vision.resized import MAX_IMAGE_PIXELS, ResizedImage

# 8-bit modes whose RGB conversion is what transformers does; 16-bit and float modes ("I", "I;16",
# "F") would be clipped to 8 bits by that conversion, so they are refused instead of mangled.
SUPPORTED_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")

ImageSource = str | os.PathLike[str] | bytes | Any  # Any: a PIL.Image.Image


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:  # a dependency, but an install without dependencies may lack it
        raise ImageInputError("reading images needs Pillow: pip install 'pillow>=13'") from None
    return Image


def _describe(source: ImageSource) -> str:
    if isinstance(source, bytes):
        return f"image data ({len(source)} bytes)"
    return str(source) if isinstance(source, str | os.PathLike) else "the image"


def _check_size(width: int, height: int, name: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageInputError(f"{name} has no pixels ({width}x{height})")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageInputError(
            f"{name} is too large ({width}x{height}): at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
        )


def open_image(source: ImageSource) -> Any:
    """A decoded PIL image: files and bytes are read, checked and turned upright; PIL images pass."""
    image_module = _pil()
    from PIL import ImageOps

    name = _describe(source)
    if isinstance(source, image_module.Image):
        _check_size(source.width, source.height, name)
        return source
    if not isinstance(source, str | os.PathLike | bytes):
        raise ImageInputError(f"expected a path, bytes or a PIL image, got {type(source).__name__}")
    if not isinstance(source, bytes) and not Path(source).is_file():
        reason = "a directory, not an image file" if Path(source).is_dir() else "no such file"
        raise ImageInputError(f"{name}: {reason}")
    try:
        image = image_module.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        _check_size(image.width, image.height, name)  # from the header, before decoding
        image.load()
        return ImageOps.exif_transpose(image)
    except ImageInputError:
        raise
    except image_module.UnidentifiedImageError:
        raise ImageInputError(f"{name} is not an image (unknown or unsupported format)") from None
    except image_module.DecompressionBombError:
        raise ImageInputError(f"{name} is too large to decode safely") from None
    except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ImageInputError(f"{name} is not an image this runtime can read ({reason})") from None


def to_rgb(image: Any, name: str = "the image") -> Any:
    """8-bit RGB, transparency composited onto white (transformers' convert_to_rgb for PIL images)."""
    image_module = _pil()
    if image.mode not in SUPPORTED_MODES:
        raise ImageInputError(
            f"{name} has pixel mode {image.mode!r}, which is not supported (8-bit modes only: "
            f"{', '.join(SUPPORTED_MODES)})"
        )
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = image_module.new("RGBA", rgba.size, (255, 255, 255, 255))
        return image_module.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def resize_for_model(rgb: Any, spec: ImageProcessorSpec) -> ResizedImage:
    """The RGB image resized to smart_resize's size with the processor's filter."""
    height, width = smart_resize(rgb.height, rgb.width, spec)
    resized = rgb.resize((width, height), resample=spec.resample)
    return ResizedImage(height=height, width=width, rgb=resized.tobytes())


def prepare_image(source: ImageSource, spec: ImageProcessorSpec) -> ResizedImage:
    """A path, bytes or PIL image -> the RGB bytes the patchify graph takes. Raises ImageInputError."""
    image = open_image(source)
    name = _describe(source)
    try:
        rgb = to_rgb(image, name)
    except (OSError, ValueError) as err:  # a lazily opened PIL image failing to decode here
        raise ImageInputError(f"{name} could not be decoded ({err})") from None
    try:
        return resize_for_model(rgb, spec)
    except ImageInputError as err:  # smart_resize's, which does not know the name
        raise ImageInputError(f"{name}: {err}") from None
