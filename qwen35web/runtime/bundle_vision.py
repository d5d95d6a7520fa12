"""The manifest's optional `vision` section: what a vision-language bundle adds to a text one.

    "vision": {
      "file": "vision_encoder.onnx", "data_files": [...], "dtype": "fp32",
      "patchify_file": "vision_patchify.onnx",
      "image_token_id": 5, "vision_start_token_id": 3, "vision_end_token_id": 4,
      "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
      "preprocessor": { ...the checkpoint's preprocessor_config.json... },
      "image_token_limits": {"native": {"per_image": ..., "per_prompt": ...}, "wasm": ..., "webgpu": ...}
    }

`image_token_limits` (vision/limits.py) caps the merged tokens of one image and of one prompt per
backend; a bundle written before it gets the runtime's defaults.

A bundle with it has a decoder that takes `image_embeds` (graph_io.IMAGE_EMBEDS); a bundle without
it (text-only checkpoints, `--text-only`) is read exactly as before. Stdlib only (the page reads it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.vision.limits import (
    DEFAULT_LIMITS,
    ImageTokenLimits,
    limits_from_json,
    limits_to_json,
)
from qwen35web.runtime.vision.processor_config import ImageProcessorSpec, spec_from_preprocessor_config

VISION_SECTION = "vision"
IMAGE_PAD = "<|image_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"


def _positive_int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BundleError(f"manifest.json: 'vision.{key}' must be a non-negative integer")
    return value


@dataclass(frozen=True)
class VisionInfo:
    file: str  # the vision graph: pixel_values, image_grid_thw -> image_features
    data_files: tuple[str, ...]  # its external weight files
    dtype: str  # its weight format
    patchify_file: str  # the patchify graph: resized uint8 image -> pixel_values rows
    image_token_id: int  # <|image_pad|>: one per merged image token
    vision_start_token_id: int
    vision_end_token_id: int
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    preprocessor: dict[str, Any] = field(default_factory=dict)  # preprocessor_config.json
    # backend -> merged-token caps per image and per prompt
    token_limits: dict[str, ImageTokenLimits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    def image_spec(self) -> ImageProcessorSpec:
        """The image processor's settings (BundleError if the recorded config is unusable)."""
        return spec_from_preprocessor_config(self.preprocessor)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "data_files": list(self.data_files),
            "dtype": self.dtype,
            "patchify_file": self.patchify_file,
            "image_token_id": self.image_token_id,
            "vision_start_token_id": self.vision_start_token_id,
            "vision_end_token_id": self.vision_end_token_id,
            "patch_size": self.patch_size,
            "temporal_patch_size": self.temporal_patch_size,
            "merge_size": self.merge_size,
            "preprocessor": self.preprocessor,
            "image_token_limits": limits_to_json(self.token_limits),
        }

    @classmethod
    def from_json(cls, data: Any) -> VisionInfo | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise BundleError("manifest.json: 'vision' must be an object or absent")
        names = (data.get("file"), data.get("patchify_file"), data.get("dtype"))
        files = data.get("data_files", [])
        if not all(isinstance(n, str) for n in names) or not (
            isinstance(files, list) and all(isinstance(f, str) for f in files)
        ):
            raise BundleError("manifest.json: 'vision' needs file, patchify_file, dtype and data_files")
        preprocessor = data.get("preprocessor")
        if not isinstance(preprocessor, dict):
            raise BundleError("manifest.json: 'vision.preprocessor' must be an object")
        info = cls(
            file=data["file"],
            data_files=tuple(files),
            dtype=data["dtype"],
            patchify_file=data["patchify_file"],
            **{
                key: _positive_int(data, key)
                for key in (
                    "image_token_id",
                    "vision_start_token_id",
                    "vision_end_token_id",
                    "patch_size",
                    "temporal_patch_size",
                    "merge_size",
                )
            },
            preprocessor=preprocessor,
            token_limits=limits_from_json(data.get("image_token_limits")),
        )
        info.image_spec()  # refuse a bundle whose image settings cannot be used, at load
        return info

    def files(self) -> tuple[str, ...]:
        return (self.file, *self.data_files, self.patchify_file)
