"""Model facts read from a checkpoint's config.json, checked once, in one dataclass.

Two layouts are accepted: the text-only `qwen3_5_text` config (Qwen3_5ForCausalLM) and the
vision-language `qwen3_5` config (Qwen3_5ForConditionalGeneration), whose text part sits under
`text_config` and whose weights sit under `model.language_model.*`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qwen35web.export.errors import BadInputError
from qwen35web.runtime.bundle_format import ModelFacts
from qwen35web.runtime.graph_io import FULL_ATTENTION, LINEAR_ATTENTION, MROPE_ROWS

TEXT_MODEL_TYPE = "qwen3_5_text"
VL_MODEL_TYPE = "qwen3_5"


# The model facts the exporter reads from config.json are exactly those the manifest records: one class,
# `ModelFacts`. `ModelSpec` is its old name here, kept only for bench/fidelity_recipes.py; use ModelFacts.
ModelSpec = ModelFacts

# transformers' Qwen3.5 default when rope_parameters gives no mrope_section.
DEFAULT_MROPE_SECTION = (11, 11, 10)


def read_config_json(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not model_dir.is_dir():
        raise BadInputError(f"model directory {model_dir} does not exist")
    if not path.is_file():
        raise BadInputError(f"{path} is missing: not a Hugging Face checkpoint directory")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInputError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise BadInputError(f"{path} does not hold a JSON object")
    return config


def spec_from_config(config: dict[str, Any]) -> ModelFacts:
    model_type = config.get("model_type")
    if model_type == VL_MODEL_TYPE:
        text = config.get("text_config")
        if not isinstance(text, dict):
            raise BadInputError("config.json: model_type 'qwen3_5' needs a 'text_config' object")
        prefix = "model.language_model."
        # Token ids and tying may sit at the top level of a vision-language config.
        text = {**{k: config[k] for k in ("tie_word_embeddings", "eos_token_id") if k in config}, **text}
    elif model_type == TEXT_MODEL_TYPE:
        text, prefix = config, "model."
    else:
        raise BadInputError(
            f"config.json: unsupported model_type {model_type!r} "
            f"(expected {TEXT_MODEL_TYPE!r} or {VL_MODEL_TYPE!r})"
        )
    return _text_spec(str(model_type), prefix, text)


def _field(text: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = text.get(name, default)
    if value is None:
        raise BadInputError(f"config.json: required field {name!r} is missing")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadInputError(f"config.json: field {name!r} must be {kind.__name__}, got {value!r}")
    if isinstance(value, int) and kind is int and value <= 0:
        raise BadInputError(f"config.json: field {name!r} must be positive, got {value}")
    return value


def _layer_types(text: dict[str, Any]) -> tuple[str, ...]:
    num_layers = _field(text, "num_hidden_layers", int)
    layer_types = text.get("layer_types")
    if layer_types is None:
        interval = _field(text, "full_attention_interval", int, 4)
        layer_types = [
            FULL_ATTENTION if (i + 1) % interval == 0 else LINEAR_ATTENTION for i in range(num_layers)
        ]
    if not isinstance(layer_types, list) or len(layer_types) != num_layers:
        raise BadInputError(f"config.json: 'layer_types' must list {num_layers} layers (num_hidden_layers)")
    unknown = sorted({t for t in layer_types if t not in (LINEAR_ATTENTION, FULL_ATTENTION)})
    if unknown:
        raise BadInputError(f"config.json: unknown layer types {unknown}")
    return tuple(layer_types)


def _rope(text: dict[str, Any]) -> tuple[float, float, tuple[int, ...]]:
    """rope_theta, partial_rotary_factor and the MRoPE section of the rotary frequencies."""
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise BadInputError("config.json: 'rope_parameters' must be an object")
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "mrope"):
        raise BadInputError(f"config.json: rope_type {rope_type!r} is not supported")
    theta = rope.get("rope_theta", text.get("rope_theta", 10000.0))
    partial = rope.get("partial_rotary_factor", text.get("partial_rotary_factor", 1.0))
    merged = {"rope_theta": theta, "partial_rotary_factor": partial}
    return (
        _field(merged, "rope_theta", float),
        _field(merged, "partial_rotary_factor", float),
        _mrope_section(rope),
    )


def _mrope_section(rope: dict[str, Any]) -> tuple[int, ...]:
    """How many rotary frequencies each position row (t, h, w) owns, interleaved t h w t h w ...

    transformers' Qwen3.5 always interleaves (it never reads `mrope_interleaved`); a config that
    asks for the chunked layout of older Qwen-VL models is refused rather than run differently.
    """
    section = rope.get("mrope_section", list(DEFAULT_MROPE_SECTION))
    valid = isinstance(section, list) and len(section) == MROPE_ROWS
    if not valid or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in section):
        raise BadInputError(
            f"config.json: mrope_section must be {MROPE_ROWS} non-negative ints, got {section!r}"
        )
    if rope.get("mrope_interleaved", True) is not True:
        raise BadInputError(
            "config.json: mrope_interleaved must be true (Qwen3.5 interleaves its MRoPE rows)"
        )
    return tuple(section)


def _eos_ids(text: dict[str, Any]) -> tuple[int, ...]:
    eos = text.get("eos_token_id")
    ids = eos if isinstance(eos, list) else [] if eos is None else [eos]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadInputError(f"config.json: 'eos_token_id' must be an int or a list of ints, got {eos!r}")
    return tuple(ids)


def _text_spec(model_type: str, prefix: str, text: dict[str, Any]) -> ModelFacts:
    theta, partial, mrope_section = _rope(text)
    pad = text.get("pad_token_id")
    spec = ModelFacts(
        model_type=model_type,
        weight_prefix=prefix,
        vocab_size=_field(text, "vocab_size", int),
        hidden_size=_field(text, "hidden_size", int),
        intermediate_size=_field(text, "intermediate_size", int),
        layer_types=_layer_types(text),
        num_attention_heads=_field(text, "num_attention_heads", int),
        num_key_value_heads=_field(text, "num_key_value_heads", int),
        head_dim=_field(text, "head_dim", int),
        linear_num_key_heads=_field(text, "linear_num_key_heads", int),
        linear_num_value_heads=_field(text, "linear_num_value_heads", int),
        linear_key_head_dim=_field(text, "linear_key_head_dim", int),
        linear_value_head_dim=_field(text, "linear_value_head_dim", int),
        conv_kernel=_field(text, "linear_conv_kernel_dim", int),
        rms_norm_eps=_field(text, "rms_norm_eps", float),
        rope_theta=theta,
        partial_rotary_factor=partial,
        mrope_section=mrope_section,
        tie_word_embeddings=bool(text.get("tie_word_embeddings", False)),
        eos_token_ids=_eos_ids(text),
        pad_token_id=pad if isinstance(pad, int) else None,
        max_position_embeddings=_field(text, "max_position_embeddings", int, 262144),
    )
    _check_consistency(spec, text)
    return spec


def _check_consistency(spec: ModelFacts, text: dict[str, Any]) -> None:
    hidden_act = text.get("hidden_act", "silu")
    if hidden_act != "silu":
        raise BadInputError(f"config.json: hidden_act {hidden_act!r} is not supported (only 'silu')")
    if spec.num_attention_heads % spec.num_key_value_heads:
        raise BadInputError("config.json: num_attention_heads must be a multiple of num_key_value_heads")
    if spec.linear_num_value_heads % spec.linear_num_key_heads:
        raise BadInputError("config.json: linear_num_value_heads must be a multiple of linear_num_key_heads")
    if not 0 < spec.partial_rotary_factor <= 1 or spec.rotary_dim % 2:
        raise BadInputError("config.json: partial_rotary_factor must give an even rotary dimension")
    if FULL_ATTENTION not in spec.layer_types and LINEAR_ATTENTION not in spec.layer_types:
        raise BadInputError("config.json: no decoder layers")
    if text.get("attention_bias"):
        raise BadInputError("config.json: attention_bias=true is not supported by Qwen3.5")
