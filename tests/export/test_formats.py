"""The weight-format registry: every format resolves, per-size defaults, the CLI defers to it, and its
defaults are the ones `make fidelity` chose and recorded (bench/results/fidelity.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from devtools.random_streamed import parameter_shapes
from qwen35web.export import formats
from qwen35web.export.cli import build_parser, main
from qwen35web.export.config import read_config_json, spec_from_config
from qwen35web.export.errors import BadInputError
from qwen35web.export.layout_transformers_js import graph_file
from qwen35web.export.pipeline import ExportOptions, choose_format
from qwen35web.export.quantization.columns import quantize_columns
from qwen35web.export.quantization.nbits import block_quantize
from qwen35web.export.weight_sizes import Storage, weight_shapes
from qwen35web.runtime.bundle_format import MAX_BUFFER_BYTES
from tests.checkpoints import TINY_TEXT_CONFIG

ROOT = Path(__file__).resolve().parents[2]
FIDELITY = ROOT / "bench" / "results" / "fidelity.json"
# The text configs (the -vision.json files beside them describe vision towers).
CONFIGS = sorted((ROOT / "bench" / "configs").glob("qwen3_5-*b.json"))
TRAINED = ROOT / "models" / "tiny-qwen35"


def _spec(config: dict):
    return spec_from_config(config)


def _real_specs() -> dict[str, object]:
    specs = {"tiny": spec_from_config(read_config_json(TRAINED))}
    for path in CONFIGS:
        spec = spec_from_config(json.loads(path.read_text()))
        specs[formats.size_class(spec).name] = spec
    return specs


# --- every format resolves --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(formats.FORMATS))
def test_every_format_resolves_with_its_trace_dtype_tolerance_and_passes(name):
    weight_format = formats.FORMATS[name]
    choice = formats.choose(name, _spec(TINY_TEXT_CONFIG))
    assert choice.format is weight_format and choice.size.name == "tiny" and choice.given == ()
    assert weight_format.trace_dtype in (torch.float32, torch.float16)
    assert weight_format.tolerance.max_abs > 0
    quantized = name in ("q4", "q4f16", "q8")
    assert (weight_format.quantize is not None) == quantized
    assert (weight_format.round_reference is not None) == quantized
    manifest = formats.manifest_fields(choice)["quantization"]
    if quantized:
        assert set(choice.recipe.knobs()) <= set(manifest) and manifest["size_class"] == "tiny"
        assert sorted(manifest["defaults"]) == sorted(choice.recipe.knobs())
    else:
        assert manifest is None and choice.recipe == formats.Recipe()


def test_q4f16_traces_in_fp16_and_q4_q8_in_fp32():
    assert formats.FORMATS["q4f16"].trace_dtype == formats.FORMATS["fp16"].trace_dtype == torch.float16
    assert formats.FORMATS["q4"].trace_dtype == formats.FORMATS["q8"].trace_dtype == torch.float32


@pytest.mark.parametrize(
    ("dtype", "knobs", "message"),
    [
        ("fp32", {"block_size": 16}, "--block-size applies to --dtype q4 or q4f16"),
        ("q8", {"accuracy_level": 1}, "--accuracy-level applies to --dtype q4 or q4f16"),
        ("q8", {"embedding": "int4"}, "--embedding must be one of int8, float for q8"),
        ("q4", {"block_size": 48}, "--block-size must be one of 16, 32, 64, 128, 256"),
        ("q5", {}, "--dtype must be one of"),
    ],
)
def test_a_knob_the_format_lacks_or_a_bad_value_is_bad_input(dtype, knobs, message):
    with pytest.raises(BadInputError, match=message):
        formats.choose(dtype, _spec(TINY_TEXT_CONFIG), **knobs)


def test_given_knobs_override_the_default_and_are_recorded_as_given():
    choice = formats.choose("q4", _spec(TINY_TEXT_CONFIG), block_size=64, embedding=None)
    default = formats.FORMATS["q4"].defaults["tiny"]
    assert choice.recipe.block_size == 64 and choice.recipe.embedding == default.embedding
    assert choice.given == ("block_size",)
    assert "block_size" not in formats.manifest_fields(choice)["quantization"]["defaults"]


# --- per-size defaults ------------------------------------------------------------------------


def test_each_real_config_falls_in_its_own_size_class():
    sizes = {
        path.stem: formats.size_class(spec_from_config(json.loads(path.read_text()))).name for path in CONFIGS
    }
    assert sizes == {"qwen3_5-0.8b": "0.8B", "qwen3_5-2b": "2B", "qwen3_5-4b": "4B", "qwen3_5-9b": "9B"}
    assert formats.size_class(spec_from_config(read_config_json(TRAINED))).name == "tiny"


@pytest.mark.parametrize("name", list(formats.FORMATS))
def test_every_format_has_a_default_for_every_size(name):
    weight_format = formats.FORMATS[name]
    assert set(weight_format.defaults) == {size.name for size in formats.SIZE_CLASSES}
    knob_sets = {tuple(recipe.knobs()) for recipe in weight_format.defaults.values()}
    assert len(knob_sets) == 1  # the same knobs at every size, only their values may differ


@pytest.mark.parametrize("name", ["q4", "q4f16", "q8"])
def test_every_default_fits_one_webgpu_buffer(name):
    weight_format = formats.FORMATS[name]
    for size, spec in _real_specs().items():
        cost = weight_format.cost(spec, weight_format.defaults[size])
        assert cost.largest_tensor_bytes <= MAX_BUFFER_BYTES, (name, size)


def test_each_format_names_its_transformers_js_file_and_an_existing_vision_format():
    # transformers.js 4.3's own names (utils/dtypes.js, DEFAULT_DTYPE_SUFFIX_MAPPING) for our dtypes.
    expected = {
        "fp32": "model.onnx",
        "fp16": "model_fp16.onnx",
        "q4": "model_q4.onnx",
        "q4f16": "model_q4f16.onnx",
        "q8": "model_quantized.onnx",
    }
    assert {name: graph_file(name) for name in formats.FORMATS} == expected
    assert all(f.vision_auto in formats.VISION_FORMATS for f in formats.FORMATS.values())


def test_the_vision_formats_trace_and_quantize_as_their_names_say():
    vision = formats.VISION_FORMATS
    assert list(vision) == ["fp32", "fp16", "q8", "q4"]
    assert [f.trace_dtype for f in vision.values()] == [
        torch.float32,
        torch.float16,
        torch.float32,
        torch.float32,
    ]
    assert [name for name, f in vision.items() if f.quantize is not None] == ["q8", "q4"]
    assert formats.VISION_Q4_SETTINGS.block_size == 32 and not formats.VISION_Q4_SETTINGS.symmetric


def _holds_its_rule(entry: dict) -> bool:
    """The rule bench/fidelity_recipes.py states for the branch the entry records."""
    from bench.fidelity_recipes import BEATS_BUILDER, NONE_BEATS_BUILDER, TARGETS

    meets_targets = entry["relative_perplexity_change"] <= 0.02 and entry["top1_agreement"] >= 0.95
    peer = entry.get("builder")
    if peer is None:
        return entry["rule"] == TARGETS and meets_targets
    as_faithful = (
        entry["relative_perplexity_change"] <= peer["relative_perplexity_change"]
        and entry["top1_agreement"] >= peer["top1_agreement"]
    )
    fewer_bytes = entry["bytes_per_token"] <= peer["bytes_per_token"]
    if entry["rule"] == BEATS_BUILDER:
        return as_faithful and fewer_bytes
    if entry["rule"] == NONE_BEATS_BUILDER:
        return as_faithful and not fewer_bytes
    return meets_targets


def test_the_defaults_are_what_the_fidelity_bench_chose_by_its_rule():
    """bench.fidelity measured the candidates (and the builder's int4 beside q4 and q4f16) and chose
    per size; the registry must hold that choice, and each choice its rule."""
    recorded = json.loads(FIDELITY.read_text())["recipes"]
    specs = _real_specs()
    for dtype in ("q4", "q4f16", "q8"):
        weight_format = formats.FORMATS[dtype]
        assert set(recorded[dtype]) == set(specs)
        for size, entry in recorded[dtype].items():
            assert entry["candidate"] is not None, (dtype, size, entry)
            assert weight_format.defaults[size].knobs() == entry["recipe"], (dtype, size)
            assert _holds_its_rule(entry), (dtype, size, entry)
            assert ("builder" in entry) == (dtype != "q8"), (dtype, size)
            # The bytes the bench quoted are what the registry computes from the same config today.
            cost = weight_format.cost(specs[size], weight_format.defaults[size])
            assert entry["bytes_per_token"] == cost.bytes_per_token, (dtype, size)


def test_the_default_bundles_in_the_fidelity_table_carry_the_registry_defaults():
    """The plain `--dtype q4` / `q4f16` / `q8` rows were exported with no recipe flag; q8's meets the
    targets, q4's and q4f16's score as the candidate of the same recipe does."""
    rows = {
        row["bundle"]: row
        for row in json.loads(FIDELITY.read_text())["scores"]
        if row["runtime"] == "onnxruntime"
    }
    recorded = json.loads(FIDELITY.read_text())["recipes"]
    for dtype in ("q4", "q4f16", "q8"):
        row = rows[f"{dtype}-fused"]
        assert row["dtype"] == dtype, row
        recipe = {k: v for k, v in row["recipe"].items() if k in formats.FORMATS[dtype].knob_names()}
        assert recipe == formats.FORMATS[dtype].defaults["tiny"].knobs()
        candidate = rows[recorded[dtype]["tiny"]["candidate"]]
        assert row["perplexity"] == pytest.approx(candidate["perplexity"], rel=1e-9), (row, candidate)
        assert row["top1_agreement"] == candidate["top1_agreement"]
        if dtype == "q8":
            assert row["verdict"].startswith("pass"), row


# --- the CLI defers to the registry -----------------------------------------------------------


def test_cli_recipe_flags_default_to_none_so_the_registry_decides():
    args = build_parser().parse_args(["model", "out", "--dtype", "q4"])
    assert args.block_size is None and args.accuracy_level is None and args.embedding is None
    options = ExportOptions(Path("model"), Path("out"), dtype="q4")
    choice = choose_format(options, _spec(TINY_TEXT_CONFIG))
    assert choice.recipe == formats.FORMATS["q4"].defaults["tiny"]


def test_cli_help_states_the_registry_defaults(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for knob in ("block_size", "accuracy_level", "embedding"):
        assert " ".join(formats.default_help(knob).split()) in text


def test_keep_float_embedding_is_embedding_float(tiny_text_dir, tmp_path, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(
        "qwen35web.export.cli.run_export", lambda options: seen.append(options) or {"files": {}}
    )
    assert main([str(tiny_text_dir), str(tmp_path / "a"), "--dtype", "q4", "--keep-float-embedding"]) == 0
    assert seen[0].embedding == "float"
    with pytest.raises(SystemExit) as exit_info:
        main([str(tiny_text_dir), str(tmp_path / "b"), "--keep-float-embedding", "--embedding", "int8"])
    assert exit_info.value.code == 2 and "contradicts" in capsys.readouterr().err


def test_a_recipe_flag_the_format_lacks_exits_2_with_one_line(tiny_text_dir, tmp_path, capsys):
    assert main([str(tiny_text_dir), str(tmp_path / "x"), "--block-size", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --block-size applies to --dtype q4 or q4f16") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


# --- the bytes the registry quotes ------------------------------------------------------------


@pytest.mark.parametrize("config", [TINY_TEXT_CONFIG, *[json.loads(p.read_text()) for p in CONFIGS]])
def test_weight_shapes_count_what_transformers_builds(config):
    config = {k: v for k, v in config.items() if k != "torch_dtype"}
    expected = sum(math.prod(shape) for _, shape in parameter_shapes(config.get("text_config", config)))
    assert weight_shapes(spec_from_config(config)).parameter_count() == expected


@pytest.mark.parametrize(("bits", "block_size", "symmetric"), [(4, 16, False), (8, 16, False), (4, 32, True)])
def test_block_storage_bytes_are_what_the_quantizer_writes(bits, block_size, symmetric):
    weight = np.random.default_rng(0).standard_normal((96, 40)).astype(np.float32)  # [K, N]
    quantized = block_quantize(weight, block_size, symmetric, bits)
    storage = Storage("blocks", bits, block_size, scale_bytes=4, zero_points=not symmetric)
    assert storage.nbytes(96, 40) == quantized.nbytes()
    assert storage.data_nbytes(96, 40) == quantized.packed.nbytes


def test_column_storage_bytes_are_what_the_quantizer_writes():
    quantized, scales = quantize_columns(np.ones((96, 40), dtype=np.float32))
    assert Storage("columns", 8).nbytes(96, 40) == quantized.nbytes + scales.nbytes
