"""The one error type for an image the runtime cannot use."""

from __future__ import annotations

from qwen35web.runtime.errors import RuntimeUserError


class ImageInputError(RuntimeUserError):
    """Not an image, an unsupported mode or format, no pixels, too large, or too elongated."""

    code = "bad-input"
