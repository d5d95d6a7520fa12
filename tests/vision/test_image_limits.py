"""Image-token caps: an image beyond the cap is resized as transformers' processor resizes it given
the same max_pixels; a prompt beyond its cap is refused with one line; the caps live in the manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qwen35web.export.vision.patchify_graph import write_patchify_graph
from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.native.image_preprocessor import NativeImagePreprocessor
from qwen35web.runtime.vision.errors import ImageInputError
from qwen35web.runtime.vision.limits import (
    BACKENDS,
    DEFAULT_LIMITS,
    ImageTokenLimits,
    check_prompt_tokens,
    limits_from_json,
    limits_to_json,
)
from qwen35web.runtime.vision.processor_config import smart_resize, spec_from_preprocessor_config

# The published Qwen3.5 image processor: patch 16, merge 2, 64 to 16,384 merged tokens per image.
PUBLISHED = {
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "size": {"shortest_edge": 65536, "longest_edge": 16777216},
}
PHOTO, SCREEN, SQUARE = (3024, 4032), (1080, 1920), (448, 448)  # (height, width)


def _reference_processor(model_dir: Path, max_pixels: int):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Qwen2VLImageProcessorPil.from_pretrained(
            model_dir, size={"shortest_edge": PUBLISHED["size"]["shortest_edge"], "longest_edge": max_pixels}
        )


@pytest.mark.parametrize("cap", [200, 256, 1000, 4096, 16384, 20000])
def test_capped_sizes_are_transformers_sizes_with_that_max_pixels(cap: int):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference

    spec = spec_from_preprocessor_config(PUBLISHED)
    capped = spec.capped(cap)
    max_pixels = min(cap * 32 * 32, 16777216)
    assert capped.max_pixels == max_pixels
    for height, width in [PHOTO, SCREEN, SQUARE, (8192, 8192), (100, 7000), (4000, 21), (33, 33)]:
        expected = reference(height, width, 32, spec.min_pixels, max_pixels)
        assert smart_resize(height, width, capped) == tuple(expected), (height, width)
        assert capped.num_tokens(*expected) <= cap
        assert smart_resize(*expected, capped) == tuple(expected)  # what the page sends is accepted


def test_caps_below_the_minimum_are_refused():
    spec = spec_from_preprocessor_config(PUBLISHED)
    assert spec.min_cap() == 200
    with pytest.raises(ImageInputError, match="at least 200 for this model, got 199"):
        spec.capped(199)


def test_a_photo_beyond_the_cap_gives_transformers_pixel_values(tmp_path: Path):
    """The 12 MP photo at a 256-token cap: same grid and bit-identical pixel_values as transformers."""
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(PUBLISHED))
    rng = np.random.default_rng(5)
    small = rng.integers(0, 256, (189, 252, 3), dtype=np.uint8)  # smooth-ish: upscaled noise
    photo = Image.fromarray(small).resize((PHOTO[1], PHOTO[0]), Image.Resampling.BILINEAR)
    spec = spec_from_preprocessor_config(PUBLISHED).capped(256)
    ours = NativeImagePreprocessor(write_patchify_graph(tmp_path, tmp_path), spec)
    pixel_values, grid = ours([photo])
    out = _reference_processor(tmp_path, 256 * 32 * 32)([photo])
    assert grid.tolist() == np.asarray(out["image_grid_thw"]).tolist()
    assert int(grid[0, 1] * grid[0, 2]) // 4 <= 256
    assert np.array_equal(pixel_values, np.asarray(out["pixel_values"]))


def test_limits_round_trip_and_defaults():
    assert limits_from_json(None) == DEFAULT_LIMITS
    assert limits_from_json(limits_to_json(DEFAULT_LIMITS)) == DEFAULT_LIMITS
    assert set(DEFAULT_LIMITS) == set(BACKENDS)
    for limits in DEFAULT_LIMITS.values():
        assert limits.per_prompt >= limits.per_image


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"native": {"per_image": 1, "per_prompt": 1}},
        {b: {"per_image": 0, "per_prompt": 5} for b in BACKENDS},
        {b: {"per_image": 4, "per_prompt": True} for b in BACKENDS},
    ],
)
def test_bad_limits_in_a_manifest_are_refused(data):
    with pytest.raises(BundleError, match="image_token_limits"):
        limits_from_json(data)


def test_overrides():
    limits = ImageTokenLimits(per_image=1024, per_prompt=4096)
    assert limits.with_overrides(None, None) == limits
    assert limits.with_overrides(8192, None) == ImageTokenLimits(8192, 8192)  # the prompt cap follows up
    assert limits.with_overrides(64, 100) == ImageTokenLimits(64, 100)
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ImageInputError, match="positive integer"):
            limits.with_overrides(bad, None)


def test_a_prompt_beyond_its_cap_is_one_clear_error():
    check_prompt_tokens([100, 200], 300)
    with pytest.raises(ImageInputError, match="2 images need 301 image tokens; at most 300") as caught:
        check_prompt_tokens([100, 201], 300)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


@pytest.fixture()
def vl_bundle_tiny(export_bundle) -> Path:
    return export_bundle("vl", "fused")


def _cli(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qwen35web", "generate", str(bundle), "--chat", "--prompt", "hi", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_cli_caps_images_and_prompts(vl_bundle_tiny: Path, tmp_path: Path):
    """The tiny bundle allows 256 tokens per image (factor 8): a 600x400 image is resized to the flag's
    cap; two images beyond the prompt's cap exit 2 with one line; the manifest records the defaults."""
    manifest = json.loads((vl_bundle_tiny / "manifest.json").read_text())
    assert limits_from_json(manifest["vision"]["image_token_limits"]) == DEFAULT_LIMITS
    spec = spec_from_preprocessor_config(manifest["vision"]["preprocessor"])
    capped_tokens = spec.num_tokens(*smart_resize(400, 600, spec.capped(210)))
    assert capped_tokens <= 210 < spec.num_tokens(*smart_resize(400, 600, spec))
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (400, 600, 3), dtype=np.uint8)).save(big)
    once = ("--image", str(big), "--greedy", "--max-new-tokens", "1", "--json")
    uncapped = _cli(vl_bundle_tiny, *once)
    capped = _cli(vl_bundle_tiny, *once, "--max-image-tokens", "210")
    assert uncapped.returncode == 0 and capped.returncode == 0, capped.stderr
    extra = json.loads(uncapped.stdout)["prompt_tokens"] - json.loads(capped.stdout)["prompt_tokens"]
    assert extra == spec.num_tokens(*smart_resize(400, 600, spec)) - capped_tokens
    twice = ("--image", str(big), "--image", str(big), "--max-image-tokens", "210")
    refused = _cli(vl_bundle_tiny, *twice, "--max-prompt-image-tokens", "300")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr
    assert f"2 images need {2 * capped_tokens} image tokens; at most 300 per prompt" in lines[0]
    bad = _cli(vl_bundle_tiny, "--image", str(big), "--max-image-tokens", "100")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "at least 200 for this model, got 100" in bad.stderr
