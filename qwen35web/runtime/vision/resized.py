"""An image at the model's size, as the core takes it (Pillow natively, the browser's decoder in the page)."""

from __future__ import annotations

from dataclasses import dataclass

# The largest decoded image accepted: 64 megapixels (8192 x 8192; 192 MB as RGB).
MAX_IMAGE_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class ResizedImage:
    """An image at the model's size: height x width RGB bytes, row-major (H, W, 3)."""

    height: int
    width: int
    rgb: bytes
