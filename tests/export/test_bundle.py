"""The bundle: manifest contract, integrity, op choice, --validate and --force."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from qwen35web.export import formats
from qwen35web.export.cli import main
from qwen35web.runtime.bundle_format import FORMAT_VERSION, Manifest
from qwen35web.runtime.graph_io import past_states


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_manifest_lists_every_file_with_size_and_sha256(export_bundle):
    bundle = export_bundle("text", "fused")
    manifest = _manifest(bundle)
    on_disk = {p.name for p in bundle.iterdir() if p.name != "manifest.json"}
    assert set(manifest["files"]) == on_disk
    assert {
        "model.onnx",
        "model.onnx.data",
        "sampler.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
        "config.json",
    } <= on_disk
    for name, entry in manifest["files"].items():
        data = (bundle / name).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["format_version"] == 2 and manifest["ops"] == "fused" and manifest["dtype"] == "fp32"
    assert manifest["provenance"]["libraries"]["torch"].startswith("2.13")
    assert "<|im_start|>" in manifest["chat_template"]


@pytest.mark.parametrize("layout", ["text", "vl"])
def test_graph_io_names_and_dtypes_follow_the_contract(export_bundle, layout):
    manifest = _manifest(export_bundle(layout, "fused"))
    inputs, outputs = manifest["io"]["inputs"], manifest["io"]["outputs"]
    # The tiny model: three Gated DeltaNet layers, then one full-attention layer.
    linear = [f"{kind}.{i}" for i in range(3) for kind in ("conv", "recurrent")]
    # A vision-language checkpoint's decoder also takes the image features (merged in the graph).
    images = ["image_embeds"] if layout == "vl" else []
    assert [i["name"] for i in inputs] == [
        "input_ids",
        "attention_mask",
        "position_ids",
        *images,
        *(f"past_{name}" for name in linear),
        "past_key_values.3.key",
        "past_key_values.3.value",
    ]
    assert [o["name"] for o in outputs] == [
        "logits",
        *(f"present_{name}" for name in linear),
        "present.3.key",
        "present.3.value",
    ]
    by_name = {v["name"]: v for v in inputs + outputs}
    assert by_name["input_ids"] == {
        "name": "input_ids",
        "dtype": "int64",
        "shape": ["batch_size", "sequence_length"],
    }
    assert by_name["attention_mask"]["shape"] == ["batch_size", "total_sequence_length"]
    assert by_name["position_ids"] == {
        "name": "position_ids",
        "dtype": "int64",
        "shape": [3, "batch_size", "sequence_length"],
    }
    assert by_name["logits"] == {
        "name": "logits",
        "dtype": "float32",
        "shape": ["batch_size", "sequence_length", 512],
    }
    assert by_name["past_conv.0"]["shape"] == ["batch_size", 160, 3]
    assert by_name["past_recurrent.0"] == {
        "name": "past_recurrent.0",
        "dtype": "float32",
        "shape": ["batch_size", 4, 16, 24],
    }
    assert by_name["past_key_values.3.key"]["shape"] == ["batch_size", 2, "past_sequence_length", 32]
    assert by_name["present.3.value"]["shape"] == ["batch_size", 2, "total_sequence_length", 32]
    # The batch dim is named batch_size everywhere (transformers.js resolves only that name).
    batched = [v for v in inputs + outputs if v["name"] != "image_embeds"]  # rows: the call's image tokens
    assert all(v["shape"][1 if v["name"] == "position_ids" else 0] == "batch_size" for v in batched)
    if images:
        assert by_name["image_embeds"] == {
            "name": "image_embeds",
            "dtype": "float32",
            "shape": ["num_image_tokens", 64],
        }
    sampler = manifest["sampler"]["inputs"] + manifest["sampler"]["outputs"]
    assert [v["shape"][0] for v in sampler if v["name"] not in ("penalty", "temperature", "k")] == [
        "batch_size"
    ] * 7  # logits, penalty_ids, bias_ids, bias; top_logits, top_ids, log_normalizer


@pytest.mark.parametrize(("ops", "dtype"), [("fused", "fp32"), ("portable", "fp32"), ("fused", "fp16")])
def test_state_inputs_are_past_states_of_the_model_facts(export_bundle, ops, dtype):
    """One derivation of the states: the traced graph, the manifest and both runners agree with it."""
    from qwen35web.export.ort_runner import GraphRunner
    from qwen35web.runtime.manifest import load_local_manifest
    from qwen35web.runtime.native.engine import NativeEngine
    from qwen35web.runtime.runner import ModelRunner

    bundle = export_bundle("text", ops, dtype)
    manifest = load_local_manifest(bundle)
    states = past_states(manifest.model, "float16" if dtype == "fp16" else "float32")
    assert manifest.past_states() == states
    graph = {i.name: i for i in onnx.load(str(bundle / "model.onnx"), load_external_data=False).graph.input}
    for state in states:
        dims = graph[state.name].type.tensor_type.shape.dim
        assert tuple(d.dim_value or d.dim_param for d in dims) == state.shape
        assert (
            onnx.helper.tensor_dtype_to_np_dtype(graph[state.name].type.tensor_type.elem_type).name
            == state.dtype
        )
    zeros = GraphRunner(bundle / "model.onnx").zero_states(2)
    assert [(z.shape, z.dtype.name) for z in zeros] == [(tuple(s.dims(2)), s.dtype) for s in states]
    runner = ModelRunner(NativeEngine(), manifest)
    runner.reset()
    assert [(z.shape, z.dtype.name) for z in runner.states] == [(tuple(s.dims(1)), s.dtype) for s in states]


def test_manifest_round_trips_through_the_typed_module(export_bundle):
    """What the exporter wrote is what the reader's types hold, field for field."""
    text = (export_bundle("text", "fused") / "manifest.json").read_text()
    manifest = Manifest.from_json(json.loads(text))
    assert manifest.to_json() == json.loads(text)
    assert Manifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest
    assert manifest.format_version == FORMAT_VERSION == 2
    assert manifest.model.mrope_section == (2, 1, 1) and manifest.activation_dtype == "float32"
    assert manifest.sampler.file == "sampler.onnx" and manifest.logits == "all"


def _domains(model: onnx.ModelProto) -> set[str]:
    return {node.domain or "" for node in model.graph.node}


def test_portable_graph_is_standard_onnx_plus_attached_functions(export_bundle):
    path = export_bundle("text", "portable") / "model.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    assert _domains(model) == {"", "ai.qwen35web"}
    assert {f.name for f in model.functions} == {"GatedDeltaRule", "CausalConv1DWithState"}
    for function in model.functions:
        assert {n.domain or "" for n in function.node} == {""}, function.name


def test_fused_graph_uses_onnxruntime_kernels(export_bundle):
    model = onnx.load(str(export_bundle("text", "fused") / "model.onnx"), load_external_data=False)
    ops = {(n.domain, n.op_type) for n in model.graph.node}
    assert ("com.microsoft", "LinearAttention") in ops and ("com.microsoft", "CausalConvWithState") in ops
    assert "ai.qwen35web" not in _domains(model) and not model.functions


def test_validate_writes_report_and_passes(tiny_text_dir, tmp_path):
    out = tmp_path / "validated"
    assert main([str(tiny_text_dir), str(out), "--validate"]) == 0
    report = json.loads((out / "validation.json").read_text())
    assert report["passed"] and report["worst"]["max_abs"] < 1e-5 and report["worst"]["greedy_agreement"] == 1
    assert "validation.json" in _manifest(out)["files"]


def test_validate_above_tolerance_exits_3_and_keeps_the_report(tiny_text_dir, tmp_path, monkeypatch, capsys):
    strict = formats.Tolerance(max_abs=0.0, kl=0.0, greedy_agreement=1.0)
    monkeypatch.setitem(
        formats.FORMATS, "fp32", dataclasses.replace(formats.FORMATS["fp32"], tolerance=strict)
    )
    out = tmp_path / "strict"
    assert main([str(tiny_text_dir), str(out), "--validate"]) == 3
    assert "validation failed" in capsys.readouterr().err
    assert not json.loads((out / "validation.json").read_text())["passed"]


def test_force_replaces_an_existing_bundle(tiny_text_dir, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main([str(tiny_text_dir), str(out), "--force", "--ops", "portable"]) == 0
    assert not (out / "old.txt").exists() and _manifest(out)["ops"] == "portable"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_fp16_export_validates_and_keeps_recurrent_state_fp32(tiny_text_dir, tmp_path):
    out = tmp_path / "fp16"
    assert main([str(tiny_text_dir), str(out), "--dtype", "fp16", "--validate"]) == 0
    manifest = _manifest(out)
    dtypes = {v["name"]: v["dtype"] for v in manifest["io"]["inputs"] + manifest["io"]["outputs"]}
    assert dtypes["past_key_values.3.key"] == dtypes["present.3.key"] == "float16"
    assert dtypes["past_recurrent.0"] == "float32" and dtypes["logits"] == "float32"
    report = json.loads((out / "validation.json").read_text())
    assert report["passed"] and report["worst"]["max_abs"] < 5e-3


def test_weights_split_into_data_files_of_bounded_size(tiny_text_dir, tiny_reference, tmp_path):
    from qwen35web.export.ort_runner import GraphRunner
    from qwen35web.export.pipeline import ExportOptions, run_export

    limit = 300_000
    out = tmp_path / "split"
    manifest = run_export(ExportOptions(tiny_text_dir, out, max_data_file_bytes=limit))
    data_files = manifest.external_data
    assert len(data_files) >= 3
    assert all(manifest.files[name].size <= limit for name in data_files)
    assert set(data_files) == {p.name for p in out.iterdir() if ".data" in p.name}
    prompt = np.arange(5, 45, dtype=np.int64)
    logits, _ = GraphRunner(out / "model.onnx").step(
        prompt[None], 0, GraphRunner(out / "model.onnx").zero_states(1)
    )
    with torch.no_grad():
        expected = tiny_reference(torch.from_numpy(prompt)[None]).logits[0].numpy()
    np.testing.assert_allclose(logits[0], expected, atol=1e-5, rtol=0)


def test_a_weight_bigger_than_the_file_limit_is_stored_in_row_blocks(tiny_text_dir, tiny_reference, tmp_path):
    """The embedding table (131 kB) over a 50 kB limit: split into blocks, every file within the limit."""
    from qwen35web.export.ort_runner import GraphRunner
    from qwen35web.export.pipeline import ExportOptions, run_export

    limit = 50_000
    out = tmp_path / "blocks"
    manifest = run_export(ExportOptions(tiny_text_dir, out, max_data_file_bytes=limit, validate=True))
    assert all(manifest.files[name].size <= limit for name in manifest.external_data)
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    blocks = [i.name for i in graph.initializer if i.name.startswith("model.embed_tokens.weight.rows")]
    assert len(blocks) == 3
    assert json.loads((out / "validation.json").read_text())["passed"]
    prompt = np.arange(5, 45, dtype=np.int64)
    runner = GraphRunner(out / "model.onnx")
    logits, _ = runner.step(prompt[None], 0, runner.zero_states(1))
    with torch.no_grad():
        expected = tiny_reference(torch.from_numpy(prompt)[None]).logits[0].numpy()
    np.testing.assert_allclose(logits[0], expected, atol=1e-5, rtol=0)


def test_q4_export_validates_against_rounded_weights_and_reports_quantization_error(tiny_text_dir, tmp_path):
    out = tmp_path / "q4"
    assert main([str(tiny_text_dir), str(out), "--dtype", "q4", "--validate"]) == 0
    manifest = _manifest(out)
    default = formats.FORMATS["q4"].defaults["tiny"]  # no recipe flag given: the tiny size's default
    assert manifest["dtype"] == "q4" and manifest["quantization"]["block_size"] == default.block_size
    assert manifest["quantization"]["embedding"] == default.embedding
    assert manifest["quantization"]["size_class"] == "tiny"
    assert sorted(manifest["quantization"]["defaults"]) == sorted(default.knobs())
    report = json.loads((out / "validation.json").read_text())
    assert report["passed"] and report["worst"]["kl"] < 1e-5
    assert report["quantization_error"]["worst"]["kl"] > report["worst"]["kl"]
    weights = sum(manifest["files"][name]["size"] for name in manifest["external_data"])
    assert weights < 0.3 * 1_340_000  # fp32 tiny weights are ~1.34 MB


def test_bad_block_size_is_bad_input(tiny_text_dir, tmp_path, capsys):
    assert main([str(tiny_text_dir), str(tmp_path / "x"), "--dtype", "q4", "--block-size", "48"]) == 2
    assert "--block-size" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_portable_bodies_hold_no_string_tensors(export_bundle):
    """String ops cannot be placed in a WebGPU session once inlined: the attached bodies have none."""
    model = onnx.load(str(export_bundle("text", "portable") / "model.onnx"), load_external_data=False)
    for function in model.functions:
        assert "Unique" not in {n.op_type for n in function.node}, function.name


def test_last_position_logits_validate_and_generate_the_same_tokens(tiny_text_dir, export_bundle, tmp_path):
    """--logits last: one row of logits per call, validated on the rows it returns; same generation."""
    from qwen35web.runtime.sampling import SamplingParams
    from tests.browser.references import native_tokens

    out = tmp_path / "last"
    assert main([str(tiny_text_dir), str(out), "--logits", "last", "--validate"]) == 0
    manifest = _manifest(out)
    logits = next(o for o in manifest["io"]["outputs"] if o["name"] == "logits")
    assert manifest["logits"] == "last" and logits["shape"] == ["batch_size", 1, 512]
    report = json.loads((out / "validation.json").read_text())
    assert report["passed"] and report["worst"]["max_abs"] < 1e-5
    prompt = "The quick brown fox jumps over the lazy dog. " * 3
    params = SamplingParams(temperature=1.0, seed=11, max_new_tokens=12)
    expected = native_tokens(export_bundle("text", "fused"), prompt, params, prefill_chunk=16)
    assert native_tokens(out, prompt, params, prefill_chunk=16) == expected


def test_unknown_logits_choice_is_bad_input(tiny_text_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tiny_text_dir), str(tmp_path / "x"), "--logits", "middle"])
    assert exit_info.value.code == 2 and "--logits" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
