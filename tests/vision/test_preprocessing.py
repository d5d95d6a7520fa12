"""Image preprocessing against transformers' Qwen2VLImageProcessorPil: bit-identical pixel_values.

Measured tolerance: 0. Pillow decodes and resizes with the same calls transformers makes, and the
patchify graph's table holds the float32 values transformers computes, so every element matches
exactly (max-abs 0) for every mode, size and processor config below.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from qwen35web.export.vision.patchify_graph import write_patchify_graph
from qwen35web.runtime.native.image_preprocessor import NativeImagePreprocessor
from qwen35web.runtime.vision.patchify import normalization_table
from qwen35web.runtime.vision.processor_config import (
    read_preprocessor_config,
    smart_resize,
    spec_from_preprocessor_config,
)
from tests.checkpoints import TINY_VISION_CONFIG, preprocessor_config
from tests.vision.images import write_rotated_jpeg, write_sample_images

# Qwen3-VL's published settings (patch 16, 256 to 16384 merged tokens), and one unlike any model:
# CLIP statistics (the class default), patch 14 merge 2, temporal 1, bilinear, a custom rescale.
PROCESSOR_CONFIGS = {
    "tiny": preprocessor_config(TINY_VISION_CONFIG),
    "qwen3-vl": {
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "size": {"shortest_edge": 65536, "longest_edge": 16777216},
    },
    "odd": {
        "patch_size": 14,
        "temporal_patch_size": 1,
        "merge_size": 2,
        "resample": 2,
        "rescale_factor": 0.0041,
        "min_pixels": 28 * 28 * 2,
        "max_pixels": 28 * 28 * 40,
    },
}


def reference_processor(model_dir: Path):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Qwen2VLImageProcessorPil.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    return write_sample_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module", params=list(PROCESSOR_CONFIGS))
def processors(request, tmp_path_factory):
    """(ours, transformers') built from one preprocessor_config.json."""
    model_dir = tmp_path_factory.mktemp("processor") / request.param
    model_dir.mkdir()
    (model_dir / "preprocessor_config.json").write_text(json.dumps(PROCESSOR_CONFIGS[request.param]))
    graph = write_patchify_graph(model_dir, model_dir)
    ours = NativeImagePreprocessor(graph, read_preprocessor_config(model_dir))
    return ours, reference_processor(model_dir)


def _reference(processor, images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    out = processor(images)
    return np.asarray(out["pixel_values"]), np.asarray(out["image_grid_thw"])


def test_each_image_matches_transformers(processors, samples):
    ours, theirs = processors
    for name, path in samples.items():
        pixel_values, grid = ours([path])
        expected_pixels, expected_grid = _reference(theirs, [Image.open(path)])
        assert grid.tolist() == expected_grid.tolist(), name
        assert pixel_values.dtype == np.float32 and pixel_values.shape == expected_pixels.shape, name
        assert np.array_equal(pixel_values, expected_pixels), (
            f"{name}: max-abs {np.abs(pixel_values - expected_pixels).max()}"
        )


def test_several_images_in_one_call(processors, samples):
    ours, theirs = processors
    names = ["rgba-448", "tiny-1x1", "grey-wide", "cmyk"]
    pixel_values, grid = ours([samples[n] for n in names])
    expected_pixels, expected_grid = _reference(theirs, [Image.open(samples[n]) for n in names])
    assert grid.tolist() == expected_grid.tolist()
    assert np.array_equal(pixel_values, expected_pixels)


def test_pil_images_and_bytes_are_accepted(processors, samples):
    ours, theirs = processors
    path = samples["palette-transparent"]
    expected, _ = _reference(theirs, [Image.open(path)])
    assert np.array_equal(ours([Image.open(path)])[0], expected)
    assert np.array_equal(ours([path.read_bytes()])[0], expected)
    assert np.array_equal(ours([str(path)])[0], expected)


def test_exif_orientation_is_applied_to_files(processors, tmp_path: Path):
    ours, theirs = processors
    path = write_rotated_jpeg(tmp_path / "rotated.jpeg")
    pixel_values, grid = ours([path])
    expected_pixels, expected_grid = _reference(theirs, [ImageOps.exif_transpose(Image.open(path))])
    assert grid.tolist() == expected_grid.tolist()
    assert np.array_equal(pixel_values, expected_pixels)


def test_four_channel_input_ignores_alpha(processors, samples):
    """The page may feed the browser's RGBA ImageData as it is (composited onto white before)."""
    from qwen35web.runtime.native.image_decode import prepare_image

    ours, _ = processors
    image = prepare_image(samples["rgb-odd"], ours.spec)
    rgb = np.frombuffer(image.rgb, dtype=np.uint8).reshape(image.height, image.width, 3)
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 7, dtype=np.uint8)], axis=-1)
    (from_rgba,) = ours.session.run(None, {"image": rgba})
    assert np.array_equal(from_rgba, ours.patchify(image))


def test_smart_resize_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference

    for config in PROCESSOR_CONFIGS.values():
        spec = spec_from_preprocessor_config(config)
        for height in [1, 2, 3, 7, 27, 28, 29, 55, 56, 57, 100, 333, 1000, 4095]:
            for width in [1, 5, 28, 31, 64, 199, 640, 2001]:
                if max(height, width) / min(height, width) > 200:
                    continue
                expected = reference(height, width, spec.factor, spec.min_pixels, spec.max_pixels)
                assert smart_resize(height, width, spec) == tuple(expected), (height, width)


def test_normalization_table_is_numpys_float32():
    for config in [*PROCESSOR_CONFIGS.values(), {"do_rescale": False}, {"do_normalize": False}]:
        spec = spec_from_preprocessor_config(config)
        values = np.arange(256, dtype=np.uint8)
        rescaled = (
            (values.astype(np.float64) * spec.rescale_factor).astype(np.float32)
            if spec.do_rescale
            else values.astype(np.float32)
        )
        mean, std = np.asarray(spec.image_mean, np.float32), np.asarray(spec.image_std, np.float32)
        expected = (
            ((rescaled[None, :] - mean[:, None]) / std[:, None])
            if spec.do_normalize
            else np.stack([rescaled] * 3)
        )
        assert np.array_equal(np.asarray(normalization_table(spec), np.float32), expected.reshape(-1))


def test_page_side_modules_need_neither_numpy_nor_pillow():
    """What Pyodide will run (no numpy there; the browser decodes): config, sizes, the table."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('numpy', 'PIL', 'onnxruntime'):\n    sys.modules[name] = None\n"
        "from qwen35web.runtime.native import image_decode as decode\n"
        "from qwen35web.runtime.vision import errors, patchify, processor_config as pc\n"
        "spec = pc.spec_from_preprocessor_config({'patch_size': 16})\n"
        "assert pc.smart_resize(448, 448, spec) == (448, 448)\n"
        "assert len(patchify.normalization_table(spec)) == 768\n"
        "try:\n    decode.prepare_image(b'x', spec)\nexcept errors.ImageInputError as err:\n    print(err)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "needs Pillow" in result.stdout
