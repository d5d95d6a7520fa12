"""Images the runtime cannot use: one error type (ImageInputError, exit status 2), one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qwen35web.runtime.errors import BundleError, RuntimeUserError
from qwen35web.runtime.native import image_decode as decode
from qwen35web.runtime.native.image_decode import prepare_image
from qwen35web.runtime.vision.errors import ImageInputError
from qwen35web.runtime.vision.processor_config import read_preprocessor_config, spec_from_preprocessor_config
from tests.checkpoints import TINY_VISION_CONFIG, preprocessor_config

SPEC = spec_from_preprocessor_config(preprocessor_config(TINY_VISION_CONFIG))


def _png(path: Path, image: Image.Image) -> Path:
    image.save(path)
    return path


def _truncated_png(tmp_path: Path) -> Path:
    whole = _png(tmp_path / "whole.png", Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 9))
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:100])
    return cut


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp / "missing.png", "no such file"),
        (lambda tmp: tmp / "notes.txt", "not an image"),
        (lambda tmp: b"", "not an image"),
        (lambda tmp: b"GIF89a this is not really one", "not an image"),
        (_truncated_png, "not an image"),
        (lambda tmp: Image.new("RGB", (0, 5)), "no pixels"),
        (lambda tmp: Image.new("I;16", (8, 8)), "pixel mode 'I;16'"),
        (lambda tmp: Image.new("F", (8, 8)), "pixel mode 'F'"),
        (lambda tmp: _png(tmp / "deep.png", Image.new("I;16", (8, 8))), "pixel mode"),
        (lambda tmp: Image.new("RGB", (1, 300)), "too elongated"),
        (lambda tmp: 42, "expected a path, bytes or a PIL image"),
    ],
)
def test_bad_images_raise_one_error_type(tmp_path: Path, make, message: str):
    (tmp_path / "notes.txt").write_text("hello, not a picture\n")
    with pytest.raises(ImageInputError, match=message) as caught:
        prepare_image(make(tmp_path), SPEC)
    assert isinstance(caught.value, RuntimeUserError) and caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


def test_images_over_the_limit_are_refused_before_decoding(tmp_path: Path, monkeypatch):
    path = _png(tmp_path / "big.png", Image.new("RGB", (300, 200)))
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 300 * 200 - 1)
    with pytest.raises(ImageInputError, match="too large"):
        prepare_image(path, SPEC)
    assert decode.MAX_IMAGE_PIXELS < 300 * 200  # the limit, not Pillow, refused it


@pytest.mark.parametrize(
    "config, message",
    [
        ({"do_resize": False}, "do_resize"),
        ({"do_convert_rgb": False}, "do_convert_rgb"),
        ({"resample": 9}, "resample"),
        ({"patch_size": 0}, "patch_size"),
        ({"image_std": [0.5, 0.0, 0.5]}, "image_std"),
        ({"image_mean": [0.5, 0.5]}, "image_mean"),
        ({"size": {"longest_edge": 100}}, "shortest_edge"),
        ({"min_pixels": 1000, "max_pixels": 10}, "exceeds"),
    ],
)
def test_bad_processor_configs(config: dict, message: str):
    with pytest.raises(BundleError, match=message):
        spec_from_preprocessor_config(config)


def test_missing_or_broken_processor_config(tmp_path: Path):
    with pytest.raises(BundleError, match="missing"):
        read_preprocessor_config(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_preprocessor_config(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(BundleError, match="JSON object"):
        read_preprocessor_config(tmp_path)
