"""The bundle's sampling defaults (manifest `generation`: the checkpoint's generation_config.json, a file
given at export, or the Qwen3.5 model card's values) under the user's settings.

One rule for the CLI, the page and embedders: a setting the user gives wins; else the bundle's default
(manifest `generation`); else the runtime's own (SamplingParams' field defaults). `do_sample: false` in a
checkpoint means greedy by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# manifest `generation` key -> SamplingParams field
_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def bundle_sampling_defaults(generation: Mapping[str, Any]) -> dict[str, Any]:
    """SamplingParams keyword arguments the bundle recommends."""
    defaults = {field: generation[key] for key, field in _FIELDS.items() if key in generation}
    if "do_sample" in generation:
        defaults["greedy"] = not generation["do_sample"]
    return defaults


def with_bundle_defaults(user: Mapping[str, Any], generation: Mapping[str, Any]) -> dict[str, Any]:
    """`user`'s settings (None = not given) over the bundle's defaults; unset keys are left out."""
    merged = bundle_sampling_defaults(generation)
    merged.update({key: value for key, value in user.items() if value is not None})
    return merged
