"""The images the page's vision tests attach, written under the test site's test-images/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _scene(width: int, height: int) -> Image.Image:
    """A picture a person can recognise in a screenshot: sky, sun, hills (drawn, no photo needed)."""
    y = np.linspace(0, 1, height)[:, None]
    sky = np.stack([70 + 150 * y, 130 + 90 * y, 230 - 40 * y], axis=-1) * np.ones((1, width, 1))
    image = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    sun = (width * 0.62, height * 0.12, width * 0.82, height * 0.12 + width * 0.2)
    draw.ellipse(sun, fill=(255, 204, 64))
    draw.polygon([(0, height), (0, height * 0.7), (width * 0.35, height * 0.55), (width * 0.7, height * 0.75),
                  (width, height * 0.6), (width, height)], fill=(60, 140, 70))  # fmt: skip
    return image


def write_vision_images(directory: Path) -> dict[str, Path]:
    """name -> file: odd sizes and modes (RGB, RGBA with transparent rows, grey with alpha, a palette
    with a transparent index), images only one test uses, and a file that is not an image."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(17)
    rgba = rng.integers(0, 256, (45, 61, 4), dtype=np.uint8)
    rgba[:10, :, 3] = 0  # fully transparent rows: white after compositing
    palette = Image.fromarray(rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=12
    )
    images = {
        "rgb-odd.png": Image.fromarray(rng.integers(0, 256, (53, 37, 3), dtype=np.uint8)),
        "rgba-alpha.png": Image.fromarray(rgba, "RGBA"),
        "la.png": Image.fromarray(rng.integers(0, 256, (70, 23, 2), dtype=np.uint8), "LA"),
        "palette.png": palette,
        "chat.png": Image.fromarray(rng.integers(0, 256, (40, 66, 3), dtype=np.uint8)),
        "scene.png": _scene(90, 60),
    }
    paths = {}
    for name, image in images.items():
        paths[name] = directory / name
        image.save(paths[name], **({"transparency": 2} if image.mode == "P" else {}))
    paths["not-an-image.png"] = directory / "not-an-image.png"
    paths["not-an-image.png"].write_text("plain text, not a PNG\n")
    return paths
