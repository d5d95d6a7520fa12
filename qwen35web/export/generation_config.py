"""A checkpoint's generation_config.json: its end-of-sequence ids and its sampling defaults.

Published Qwen3.5 checkpoints end a turn with either of two ids and recommend sampling settings; the
bundle records both (`manifest["generation"]`), and the runtime, the CLI and the page use them whenever
the user gives none. Only the fields the runtime understands are kept; a field of the wrong type is bad
input (one clear line), not silently dropped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from qwen35web.export.errors import BadInputError

GENERATION_CONFIG = "generation_config.json"

# generation_config.json key -> (manifest key, type check, description for the error message)
_SAMPLING_FIELDS: dict[str, tuple[str, type, str]] = {
    "do_sample": ("do_sample", bool, "true or false"),
    "temperature": ("temperature", float, "a number > 0"),
    "top_p": ("top_p", float, "a number in (0, 1]"),
    "top_k": ("top_k", int, "an integer >= 0"),
    "repetition_penalty": ("repetition_penalty", float, "a number > 0"),
    # Not transformers' fields, but what a user's --generation-config file may recommend (OpenAI's).
    "presence_penalty": ("presence_penalty", float, "a number in [-2, 2]"),
    "frequency_penalty": ("frequency_penalty", float, "a number in [-2, 2]"),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid(key: str, value: Any) -> bool:
    if key == "do_sample":
        return isinstance(value, bool)
    if key == "top_k":
        return _is_int(value) and value >= 0
    if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
        return False
    if key in ("presence_penalty", "frequency_penalty"):
        return -2 <= value <= 2
    return 0 < value <= 1 if key == "top_p" else value > 0


def _eos_ids(value: Any, label: str = GENERATION_CONFIG) -> list[int]:
    ids = value if isinstance(value, list) else [value]
    if not ids or not all(_is_int(i) and i >= 0 for i in ids):
        raise BadInputError(f"{label}: 'eos_token_id' must be an id or a list of ids, not {value!r}")
    return list(ids)


def read_generation_config(model_dir: Path, path: Path | None = None) -> dict[str, Any]:
    """The manifest's `generation` section from MODEL_DIR/generation_config.json, or from `path` (a
    user's file, which must exist); {} when the checkpoint has none."""
    label = str(path) if path is not None else GENERATION_CONFIG
    path = path if path is not None else model_dir / GENERATION_CONFIG
    if not path.is_file():
        if label != GENERATION_CONFIG:
            raise BadInputError(f"--generation-config: no such file: {label}")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BadInputError(f"{label} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{label} must hold a JSON object")
    section: dict[str, Any] = {}
    if data.get("eos_token_id") is not None:
        section["eos_token_ids"] = _eos_ids(data["eos_token_id"], label)
    for key, (manifest_key, kind, description) in _SAMPLING_FIELDS.items():
        if data.get(key) is None:
            continue
        if not _valid(key, data[key]):
            raise BadInputError(f"{label}: '{key}' must be {description}, got {data[key]!r}")
        section[manifest_key] = kind(data[key])
    return section
