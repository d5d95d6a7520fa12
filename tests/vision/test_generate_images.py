"""`qwen35web generate --chat --image`: greedy tokens and final logits against transformers'
Qwen3_5ForConditionalGeneration with its processor, and the bad-input catalogue through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qwen35web.export.pipeline import ExportOptions, run_export
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.vision.prompt import image_message
from tests.run_async import run_async

PROMPT = "Describe the image."
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def vl_bundles(vl_checkpoint, tmp_path_factory):
    """tower name (tests/vision/conftest.py TOWERS) -> (checkpoint, bundle), exported once each."""
    made: dict[str, tuple[Path, Path]] = {}

    def get(tower: str) -> tuple[Path, Path]:
        if tower not in made:
            checkpoint = vl_checkpoint(tower)
            out = tmp_path_factory.mktemp(f"vlb-{tower}") / "bundle"
            run_export(ExportOptions(model_dir=checkpoint, out_dir=out))
            made[tower] = checkpoint, out
        return made[tower]

    return get


@pytest.fixture(scope="module")
def vl_bundle(vl_bundles) -> tuple[Path, Path]:
    return vl_bundles("tiny")


def _images(directory: Path) -> dict[str, Path]:
    """Odd sizes and modes: RGB, RGBA with transparent pixels (composited onto white), palette."""
    rng = np.random.default_rng(11)
    paths = {}
    for name, (h, w) in {"odd": (53, 37), "wide": (20, 90)}.items():
        paths[name] = directory / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[name])
    rgba = rng.integers(0, 256, (45, 61, 4), dtype=np.uint8)
    rgba[::3, :, 3] = 0  # every third row fully transparent
    paths["alpha"] = directory / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(paths["alpha"])
    paths["palette"] = directory / "palette.png"
    Image.fromarray(rng.integers(0, 256, (33, 71, 3), dtype=np.uint8)).quantize(16).save(paths["palette"])
    return paths


def _image_only_processor(base: type) -> type:
    """transformers' Qwen3-VL processor without its video processor (which needs torchvision, not installed):
    its constructor type-checks every part, and the check of the absent video part fails on the lookup."""

    class ImageOnlyProcessor(base):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, argument_name, argument):
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    return ImageOnlyProcessor


def _reference(checkpoint: Path, images: list[Path]) -> tuple[list[int], list[int], np.ndarray]:
    from transformers import AutoTokenizer, Qwen3_5ForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(checkpoint)
    processor = _image_only_processor(Qwen3VLProcessor)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=None,
        chat_template=tokenizer.chat_template,
    )
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": PROMPT}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.open(p) for p in images], return_tensors="pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Qwen3_5ForConditionalGeneration.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            eos_token_id=None,
        )
    prompt = inputs["input_ids"][0].tolist()
    new = out.sequences[0, len(prompt) :].tolist()
    return prompt, new, out.logits[-1][0].float().numpy()


async def _ours(bundle: Path, images: list[Path], chunk: int) -> tuple[list[int], list[int], np.ndarray]:
    runtime = await open_native(bundle, kept_states_budget=0, prefill_chunk=chunk)
    try:
        image_ids = [runtime.add_image(path) for path in images]
        prompt = runtime.prompt(messages=[image_message(PROMPT, image_ids)])
        params = SamplingParams(greedy=True, max_new_tokens=NEW_TOKENS)
        async for _ in runtime.stream(prompt.ids, params, images=prompt.images):
            pass
        result = runtime.generator.result
        assert result.images_encoded == len(set(image_ids))
        logits = np.asarray(await runtime.runner.last_logits())
    finally:
        await runtime.close()
    return prompt.ids, result.tokens, logits


# chunk 7: the prefill is cut inside each image's run of pad tokens (rows and features split). The
# towers differ in depth, width, heads, patch, merge and temporal patch sizes (tests/vision/conftest.py).
@pytest.mark.parametrize(
    "tower, names, chunk",
    [
        ("tiny", ["odd"], 256),
        ("tiny", ["odd", "wide"], 256),
        ("tiny", ["alpha", "palette"], 7),
        ("merge3", ["odd", "alpha"], 256),
        ("merge1-deep", ["palette"], 64),
        ("many-heads", ["wide", "odd"], 7),
    ],
)
def test_images_match_transformers(vl_bundles, tmp_path, tower, names, chunk):
    checkpoint, bundle = vl_bundles(tower)
    paths = _images(tmp_path)
    images = [paths[n] for n in names]
    ref_prompt, ref_tokens, ref_logits = _reference(checkpoint, images)
    prompt, tokens, logits = run_async(_ours(bundle, images, chunk))
    assert prompt == ref_prompt
    assert tokens == ref_tokens
    # Our last logits are after the last fed token (NEW_TOKENS - 1 decode steps): transformers' last too.
    assert float(np.abs(logits - ref_logits).max()) <= 1e-4


def _cli(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qwen35web", "generate", str(bundle), "--chat", "--prompt", "hi", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_bad_images_one_error_line(vl_bundle, tmp_path):
    _, bundle = vl_bundle
    (tmp_path / "text.png").write_text("not an image")
    Image.new("I;16", (8, 8)).save(tmp_path / "deep.png")
    Image.new("RGB", (1, 300)).save(tmp_path / "thin.png")  # transformers allows up to 200:1
    cases = {
        "missing.png": "no such file",
        "text.png": "is not an image",
        "deep.png": "pixel mode",
        "thin.png": "too elongated",
    }
    for name, expected in cases.items():
        done = _cli(bundle, "--image", str(tmp_path / name))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), done.stderr
        assert expected in lines[0], lines[0]


def test_json_output(vl_bundle, tmp_path):
    _, bundle = vl_bundle
    paths = _images(tmp_path)
    done = _cli(bundle, "--image", str(paths["odd"]), "--greedy", "--max-new-tokens", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["tokens"]) <= 3
