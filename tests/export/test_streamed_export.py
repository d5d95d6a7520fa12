"""Streamed export: a weightless trace plus lazily read weights, and the streamed random checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor

from devtools.random_checkpoint import TINY_TEXT_CONFIG
from devtools.random_streamed import write_streamed_checkpoint
from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.config import read_config_json, spec_from_config
from qwen35web.export.decoder import load_decoder
from qwen35web.export.lazy_weights import attach_checkpoint_weights, optimize_with_weights, weightless_decoder
from qwen35web.export.ort_runner import GraphRunner
from qwen35web.export.passes.choose_ops import choose_ops
from qwen35web.export.trace import trace_to_onnx


def _spec_and_checkpoint(directory: Path):
    return spec_from_config(read_config_json(directory)), Checkpoint(directory)


def test_weightless_decoder_holds_no_weights(tiny_text_dir: Path) -> None:
    spec, checkpoint = _spec_and_checkpoint(tiny_text_dir)
    decoder = weightless_decoder(spec, checkpoint, torch.float16)
    params = list(decoder.parameters())
    assert params and all(isinstance(p, FakeTensor) and p.dtype == torch.float16 for p in params)
    assert decoder.inv_freq.dtype == torch.float32 and not isinstance(decoder.inv_freq, FakeTensor)


def test_every_initializer_becomes_a_lazy_read(tiny_text_dir: Path) -> None:
    spec, checkpoint = _spec_and_checkpoint(tiny_text_dir)
    model = trace_to_onnx(weightless_decoder(spec, checkpoint, torch.float32), optimize=False)
    count = attach_checkpoint_weights(model, spec, checkpoint)
    lazy = [v for v in model.graph.initializers.values() if isinstance(v.const_value, ir.LazyTensor)]
    assert count == len(lazy) == len(list(load_decoder(spec, checkpoint).parameters()))
    embedding = model.graph.initializers["model.embed_tokens.weight"].const_value
    assert embedding is not None
    np.testing.assert_array_equal(embedding.numpy(), checkpoint.load("model.embed_tokens.weight").numpy())


def test_constant_folding_reads_no_weight(tiny_text_dir: Path) -> None:
    """The optimizer folds Transpose(W) eagerly; the streamed export must leave every weight a lazy read."""
    spec, checkpoint = _spec_and_checkpoint(tiny_text_dir)
    model = trace_to_onnx(weightless_decoder(spec, checkpoint, torch.float32), optimize=False)
    model = optimize_with_weights(model, spec, checkpoint)
    big = [
        v
        for v in model.graph.initializers.values()
        if v.const_value is not None and v.const_value.size > 1024
    ]
    assert big and all(isinstance(v.const_value, ir.LazyTensor) for v in big), [
        (v.name, type(v.const_value).__name__) for v in big if not isinstance(v.const_value, ir.LazyTensor)
    ]
    transposed = {n.inputs[0].name for n in model.graph if n.op_type == "Transpose" and n.inputs[0] in big}
    assert transposed == {"model.embed_tokens.weight"}  # the tied head: the table is also gathered


@pytest.mark.parametrize("layout", ["text", "vl"])
def test_streamed_graph_equals_the_graph_traced_with_weights(
    layout: str, tiny_text_dir: Path, tiny_vl_dir: Path, tmp_path: Path
) -> None:
    directory = tiny_text_dir if layout == "text" else tiny_vl_dir
    spec, checkpoint = _spec_and_checkpoint(directory)
    streamed = trace_to_onnx(weightless_decoder(spec, checkpoint, torch.float32), optimize=False)
    streamed = choose_ops(optimize_with_weights(streamed, spec, checkpoint), "fused")
    eager = choose_ops(trace_to_onnx(load_decoder(spec, checkpoint), torch.float32), "fused")
    assert [n.op_type for n in streamed.graph] == [n.op_type for n in eager.graph]
    ids = np.arange(37, dtype=np.int64)[None] % 500
    logits = []
    for name, model in (("streamed", streamed), ("eager", eager)):
        ir.save(model, tmp_path / f"{name}.onnx")
        runner = GraphRunner(tmp_path / f"{name}.onnx")
        logits.append(runner.step(ids, 0, runner.zero_states(1))[0])
    np.testing.assert_array_equal(logits[0], logits[1])


def test_streamed_random_checkpoint_is_sharded_seeded_and_loadable(tmp_path: Path) -> None:
    from transformers import Qwen3_5ForCausalLM

    shard_bytes = 40_000  # forces several shards on the tiny shape
    first = write_streamed_checkpoint(tmp_path / "a", TINY_TEXT_CONFIG, seed=3, shard_bytes=shard_bytes)
    second = write_streamed_checkpoint(tmp_path / "b", TINY_TEXT_CONFIG, seed=3, shard_bytes=shard_bytes)
    shards = sorted(first.glob("model-*.safetensors"))
    assert len(shards) > 2
    index = json.loads((first / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {p.name for p in shards}
    for shard in shards:
        assert shard.read_bytes() == (second / shard.name).read_bytes()  # seeded: same bytes
    model = Qwen3_5ForCausalLM.from_pretrained(first, dtype=torch.float32)  # transformers' names
    state = model.state_dict()
    assert state["model.norm.weight"].abs().max() < 1.0  # zero-centred norm, perturbed
    assert torch.all(state["model.layers.0.linear_attn.dt_bias"] == 1)
    assert 0.015 < state["model.layers.0.mlp.up_proj.weight"].std() < 0.025
    spec, checkpoint = _spec_and_checkpoint(first)
    assert spec.vocab_size == TINY_TEXT_CONFIG["vocab_size"]
    assert checkpoint.load("model.embed_tokens.weight").dtype == torch.float32  # read back as asked


def test_a_process_traces_each_model_shape_once_and_writes_the_same_bytes(
    tiny_text_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second export of the same shape reuses the process's trace (a clone of it) and writes a bundle
    byte for byte the same as the first (the session's earlier exports may have traced it already)."""
    from qwen35web.export import trace
    from qwen35web.export.pipeline import ExportOptions, run_export

    traced: list[bool] = []
    real = trace._trace
    monkeypatch.setattr(trace, "_trace", lambda *args: traced.append(True) or real(*args))
    bundles = [tmp_path / name for name in ("first", "second")]
    run_export(ExportOptions(tiny_text_dir, bundles[0], ops="fused"))
    after_first = len(traced)
    run_export(ExportOptions(tiny_text_dir, bundles[1], ops="fused"))
    assert after_first <= 1 and len(traced) == after_first
    first, second = ({p.name: p.read_bytes() for p in out.iterdir()} for out in bundles)
    assert first.keys() == second.keys() and all(first[name] == second[name] for name in first)
