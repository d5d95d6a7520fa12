"""Sample images of odd sizes and modes, written as the files a user would pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _noise(width: int, height: int, channels: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def _gradient_rgba(width: int, height: int) -> Image.Image:
    """Smooth colour with an alpha ramp (so both the resize and the compositing matter)."""
    y, x = np.mgrid[0:height, 0:width]
    rgba = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256, (x * 7) % 256], axis=-1
    )
    return Image.fromarray(rgba.astype(np.uint8), "RGBA")


def _palette_with_transparency(width: int, height: int) -> Image.Image:
    image = Image.fromarray(_noise(width, height, 3, 5)).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=16
    )
    image.info["transparency"] = 3
    return image


def write_sample_images(directory: Path) -> dict[str, Path]:
    """name -> file; names say the mode and the shape."""
    directory.mkdir(parents=True, exist_ok=True)
    images: dict[str, tuple[Image.Image, str]] = {
        "rgb-odd": (Image.fromarray(_noise(37, 53, 3, 1)), "png"),
        "grey-wide": (Image.fromarray(_noise(300, 20, 1, 2)[:, :, 0], "L"), "png"),
        "grey-alpha-tall": (Image.fromarray(_noise(9, 400, 2, 3), "LA"), "png"),
        "palette": (Image.fromarray(_noise(33, 33, 3, 4)).convert("P"), "gif"),
        "palette-transparent": (_palette_with_transparency(64, 48), "png"),
        "rgba-448": (_gradient_rgba(448, 448), "png"),
        "cmyk": (Image.fromarray(_noise(50, 70, 4, 6), "CMYK"), "tiff"),
        "cmyk-jpeg": (Image.fromarray(_noise(40, 30, 4, 7), "CMYK"), "jpeg"),
        "bilevel": (Image.fromarray(_noise(17, 19, 1, 8)[:, :, 0] > 127), "png"),
        "tiny-1x1": (Image.fromarray(_noise(1, 1, 3, 9)), "png"),
        "tiny-2x3": (Image.fromarray(_noise(2, 3, 3, 10)), "bmp"),
        "large": (_gradient_rgba(1000, 700).convert("RGB"), "jpeg"),
    }
    paths = {}
    for name, (image, extension) in images.items():
        path = directory / f"{name}.{extension}"
        image.save(
            path, **({"transparency": image.info["transparency"]} if "transparency" in image.info else {})
        )
        paths[name] = path
    return paths


def write_rotated_jpeg(path: Path) -> Path:
    """A 40x24 JPEG whose EXIF orientation (6: rotate 90 degrees clockwise) makes it 24x40 upright."""
    image = Image.fromarray(_noise(40, 24, 3, 11))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif)
    return path
