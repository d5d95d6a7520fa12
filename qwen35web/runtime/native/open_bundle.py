"""Open a bundle directory natively: onnxruntime sessions, the tokenizer, Pillow for image files."""

from __future__ import annotations

import hashlib
from pathlib import Path

from qwen35web.runtime.bundle_format import MANIFEST, MODEL_FILE, TOKENIZER_FILE, WEBGPU_ONLY_OPS
from qwen35web.runtime.engine import MODEL_ROLE, SAMPLER_ROLE
from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.manifest import load_local_manifest
from qwen35web.runtime.native.engine import NativeEngine
from qwen35web.runtime.native.image_decode import prepare_image
from qwen35web.runtime.prefix_cache import DEFAULT_BUDGET_BYTES
from qwen35web.runtime.tokenizer import Tokenizer
from qwen35web.runtime.vision.images import PATCHIFY_ROLE, VISION_ROLE


async def open_native(
    bundle_dir: Path,
    threads: int | None = None,
    verify_hashes: bool = True,
    prefill_chunk: int = 256,
    kept_states_budget: int = DEFAULT_BUDGET_BYTES,
    max_context: int | None = None,
    max_image_tokens: int | None = None,
    max_prompt_image_tokens: int | None = None,
) -> Runtime:
    """The bundle in BUNDLE_DIR, ready to generate (files checked against the manifest's sha256 first)."""
    manifest = load_local_manifest(bundle_dir, verify_hashes=verify_hashes)
    if manifest.ops in WEBGPU_ONLY_OPS:
        raise BundleError(
            f"{bundle_dir} was exported with --ops {manifest.ops}: its delta rule needs onnxruntime-web's "
            "WebGPU GatedDeltaNet kernel, which onnxruntime has no CPU kernel for; run an --ops fused export"
        )
    try:
        tokenizer = Tokenizer.from_file(bundle_dir / TOKENIZER_FILE)
    except ValueError as err:
        raise BundleError(f"{TOKENIZER_FILE}: {err}") from None
    engine = NativeEngine(threads)
    await engine.open(MODEL_ROLE, str(bundle_dir / MODEL_FILE))
    await engine.open(SAMPLER_ROLE, str(bundle_dir / manifest.sampler.file))
    if manifest.vision is not None:
        await engine.open(VISION_ROLE, str(bundle_dir / manifest.vision.file))
        await engine.open(PATCHIFY_ROLE, str(bundle_dir / manifest.vision.patchify_file))
    identity = hashlib.sha256((bundle_dir / MANIFEST).read_bytes()).hexdigest()
    return Runtime(
        manifest,
        tokenizer,
        engine,
        prefill_chunk=prefill_chunk,
        kept_states_budget=kept_states_budget,
        manifest_sha256=identity,
        max_context=max_context,
        image_decoder=prepare_image,
        max_image_tokens=max_image_tokens,
        max_prompt_image_tokens=max_prompt_image_tokens,
    )
