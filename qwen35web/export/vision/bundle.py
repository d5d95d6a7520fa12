"""A vision-language bundle's extra files: the vision graph, the patchify graph, the manifest section.

The image embeddings are merged inside the decoder graph (an `image_embeds` input consumed where
input_ids holds the image-pad id, graph_io.IMAGE_EMBEDS), not in a separate embedding graph: the
token table is tied to the LM head in every small Qwen3.5, so a split graph would either store the
table twice (0.8B: 248320 x 1024 = 254M values, ~1 GB fp32 / ~127 MB q4) or need a third graph
to share it, and it costs a graph call per step. The merge costs a CumSum, a Gather and a Where
over [B, T] per call and no bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qwen35web.export.errors import BadInputError
from qwen35web.export.vision.export import export_vision
from qwen35web.export.vision.patchify_graph import write_patchify_graph
from qwen35web.runtime.bundle_vision import VisionInfo
from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.vision.patchify import PATCHIFY_FILE
from qwen35web.runtime.vision.processor_config import PREPROCESSOR_FILE, spec_from_preprocessor_config

TOKEN_ID_KEYS = ("image_token_id", "vision_start_token_id", "vision_end_token_id")


def wants_vision(config: dict[str, Any], options: Any) -> bool:
    """A VL checkpoint exported as a bundle, unless --text-only (other layouts stay text-only)."""
    return (
        isinstance(config.get("vision_config"), dict) and not options.text_only and options.layout == "bundle"
    )


def image_token_ids(config: dict[str, Any]) -> tuple[int, int, int]:
    """(image pad, vision start, vision end) ids from a VL config.json."""
    ids = [config.get(key) for key in TOKEN_ID_KEYS]
    for key, value in zip(TOKEN_ID_KEYS, ids, strict=True):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadInputError(f"config.json: a vision checkpoint needs an integer {key!r} (or --text-only)")
    return ids[0], ids[1], ids[2]  # type: ignore[return-value]


def read_preprocessor(model_dir: Path) -> dict[str, Any]:
    """The checkpoint's preprocessor_config.json, checked before anything is traced or written.

    A missing file is refused, not replaced by the image processor's documented defaults: those are
    transformers' class defaults (patch 14, OpenAI CLIP's mean and std, 28 x 28 x 1280 pixels at
    most), not Qwen3.5's settings (patch 16, mean and std 0.5). The patch size could be read from
    the vision config, but the normalisation cannot be known, and wrong statistics would give every
    image wrong features without any error. A fine-tune saved with `model.save_pretrained` keeps its
    base model's processor: copying that one file is the fix, and `--text-only` the way around.
    """
    path = model_dir / PREPROCESSOR_FILE
    if not path.is_file():
        raise BadInputError(
            f"{path} is missing: a vision checkpoint needs its image processor's settings (copy the base "
            "model's preprocessor_config.json beside config.json, or export with --text-only)"
        )
    try:
        preprocessor = json.loads(path.read_text(encoding="utf-8"))
        spec_from_preprocessor_config(preprocessor)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInputError(f"{path} is not valid JSON ({err})") from None
    except BundleError as err:
        raise BadInputError(str(err)) from None
    return preprocessor


def check_vision_checkpoint(model_dir: Path, config: dict[str, Any]) -> int:
    """The image-pad token id of a VL checkpoint whose vision export can proceed (BadInputError if not)."""
    read_preprocessor(model_dir)
    return image_token_ids(config)[0]


def export_vision_files(
    model_dir: Path, out_dir: Path, config: dict[str, Any], dtype: str = "fp32"
) -> VisionInfo:
    """Write the vision and patchify graphs into out_dir; their manifest section."""
    preprocessor = read_preprocessor(model_dir)
    write_patchify_graph(model_dir, out_dir)  # checks the preprocessor config first
    exported = export_vision(model_dir, out_dir, dtype)
    image, start, end = image_token_ids(config)
    spec = exported.spec
    return VisionInfo(
        file=exported.graph.name,
        data_files=exported.data_files,
        dtype=dtype,
        patchify_file=PATCHIFY_FILE,
        image_token_id=image,
        vision_start_token_id=start,
        vision_end_token_id=end,
        patch_size=spec.patch_size,
        temporal_patch_size=spec.temporal_patch_size,
        merge_size=spec.spatial_merge_size,
        preprocessor=preprocessor,
    )
