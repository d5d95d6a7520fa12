"""int4 weight quantization pass (q4 / q4f16): numerics, storage, options, on the tiny checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
import torch

from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.config import read_config_json, spec_from_config
from qwen35web.export.decoder import load_decoder
from qwen35web.export.logit_stats import mean_kl
from qwen35web.export.ort_runner import GraphRunner
from qwen35web.export.passes.choose_ops import choose_ops
from qwen35web.export.passes.quantize import quantize_weights
from qwen35web.export.quantization.nbits import block_quantize, dequantize
from qwen35web.export.quantization.rounding import fake_quantize_module
from qwen35web.export.trace import trace_to_onnx
from tests.checkpoints import TINY_TEXT_CONFIG, random_model, write_text_checkpoint
from tests.logits import reference_logits, seeded_ids

# Measured on the tiny checkpoint (seed 0), 64-token prompt, vs transformers fp32:
#   q4 (block 32, accuracy 4): max-abs 0.105, KL 2.5e-4; q4f16: max-abs 0.105, KL 2.5e-4.
# A random model's logits are nearly flat, so these are loose stand-ins for a trained model's.
Q4_MAX_ABS, Q4_KL = 0.2, 1e-3
# The q4 graph (accuracy 1) against transformers given the same int4-rounded weights: measured
# 2.7e-7 (tiny) and 4.4e-5 (0.8B shape), like the fp32 export's parity.
ROUNDED_WEIGHTS_MAX_ABS = 1e-5
VOCAB, HIDDEN = 512, 64


def _traced(directory: Path, dtype: torch.dtype) -> onnx.ModelProto:
    spec = spec_from_config(read_config_json(directory))
    model = choose_ops(trace_to_onnx(load_decoder(spec, Checkpoint(directory), dtype), dtype), "fused")
    return ir.serde.serialize_model(model)


@pytest.fixture(scope="module")
def traced(tiny_text_dir: Path) -> Callable[[str], ir.Model]:
    """A fresh copy of the traced tiny graph ("fp32" or "fp16") for each call; traced once."""
    protos: dict[str, onnx.ModelProto] = {}

    def get(dtype: str = "fp32") -> ir.Model:
        if dtype not in protos:
            protos[dtype] = _traced(tiny_text_dir, torch.float16 if dtype == "fp16" else torch.float32)
        return ir.serde.deserialize_model(protos[dtype])

    return get


@pytest.fixture(scope="module")
def q4_path(traced, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(quantize_weights(traced(), fp16_scales=False), tmp_path_factory.mktemp("q4"))


def _save(model: ir.Model, directory: Path) -> Path:
    path = directory / "model.onnx"
    ir.save(model, path)
    return path


def _nodes(model: ir.Model, op_type: str) -> list[ir.Node]:
    return [node for node in model.graph if node.op_type == op_type]


def _weight_gathers(model: ir.Model) -> list[ir.Node]:
    """Gathers that read a table of weights (not the rotary's Gather of position_ids rows)."""
    return [node for node in _nodes(model, "Gather") if node.inputs[0].const_value is not None]


def _initializer_bytes(model: ir.Model) -> int:
    return sum(value.const_value.nbytes for value in model.graph.initializers.values())  # type: ignore[union-attr]


# --- numerics -------------------------------------------------------------------------------


def test_q4_prefill_and_decode_close_to_pytorch(q4_path, tiny_reference):
    runner = GraphRunner(q4_path)
    prompt, continuation = seeded_ids(40), seeded_ids(16, seed=8)
    ref = reference_logits(tiny_reference, np.concatenate([prompt, continuation]))
    logits, states = runner.step(prompt[None], 0, runner.zero_states(1))
    decoded = []
    for i, token in enumerate(continuation):
        step, states = runner.step(np.array([[token]]), 40 + i, states)
        decoded.append(step[0, 0])
    got = np.concatenate([logits[0], np.stack(decoded)])
    assert np.abs(got - ref).max() < Q4_MAX_ABS
    assert mean_kl(ref, got) < Q4_KL
    assert np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.9


def test_q4_greedy_agrees_with_pytorch_fp32(q4_path, tiny_reference):
    prompt = seeded_ids(20, seed=3)
    ids = torch.from_numpy(prompt)[None]
    with torch.no_grad():
        expected = tiny_reference.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, min_new_tokens=32, do_sample=False
        )[0, 20:].tolist()
    got = GraphRunner(q4_path).greedy(prompt, 32, chunk=7)
    # Measured: all 32 equal. A flat random model may flip a near tie; more than 3 is a bug.
    assert np.sum(np.array(got) != np.array(expected)) <= 3


@pytest.mark.parametrize("embedding", ["int4", "int8", "float"], ids=lambda e: f"embedding-{e}")
def test_q4_equals_pytorch_with_the_same_rounded_weights(traced, tmp_path, embedding):
    """accuracy_level 1 computes in fp32: only the rounding of the weights differs from fp32, and
    the PyTorch model given exactly those weights must agree to fp32 precision."""
    model = quantize_weights(traced(), fp16_scales=False, accuracy_level=1, embedding=embedding)
    runner = GraphRunner(_save(model, tmp_path))
    reference = random_model(TINY_TEXT_CONFIG, seed=0)
    fake_quantize_module(reference, embedding=embedding)
    prompt = seeded_ids(33)
    logits, _ = runner.step(prompt[None], 0, runner.zero_states(1))
    assert np.abs(logits[0] - reference_logits(reference, prompt)).max() < ROUNDED_WEIGHTS_MAX_ABS


UNTIED_CONFIG = {**TINY_TEXT_CONFIG, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def untied_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untied checkpoint (a separate lm_head, as the 9B has)."""
    return write_text_checkpoint(tmp_path_factory.mktemp("untied") / "ckpt", UNTIED_CONFIG, seed=1)


@pytest.mark.parametrize("embedding", ["int8", "float"])
def test_an_untied_head_takes_the_embedding_precision(untied_dir, tmp_path, embedding):
    """`embedding` covers the LM head tied or not: the untied head is int8 with an int8 table, float
    with a float one, and PyTorch given the same rounding agrees to fp32 precision."""
    traced_model = ir.serde.deserialize_model(_traced(untied_dir, torch.float32))
    model = quantize_weights(traced_model, fp16_scales=False, accuracy_level=1, embedding=embedding)
    heads = [node for node in _nodes(model, "MatMulNBits") if node.attributes["N"].as_int() == VOCAB]
    if embedding == "int8":
        assert [node.attributes["bits"].as_int() for node in heads] == [8]
        assert [node.attributes["bits"].as_int() for node in _nodes(model, "GatherBlockQuantized")] == [8]
    else:
        assert heads == [] and len(_weight_gathers(model)) == 1
        assert [node.inputs[1].shape for node in _nodes(model, "MatMul")][-1] == ir.Shape([HIDDEN, VOCAB])
    assert len(_nodes(model, "MatMulNBits")) == 31 + len(heads)
    runner = GraphRunner(_save(model, tmp_path))
    reference = random_model(UNTIED_CONFIG, seed=1)
    fake_quantize_module(reference, embedding=embedding)
    prompt = seeded_ids(33)
    logits, _ = runner.step(prompt[None], 0, runner.zero_states(1))
    assert np.abs(logits[0] - reference_logits(reference, prompt)).max() < ROUNDED_WEIGHTS_MAX_ABS


def test_q4f16_runs_close_to_pytorch(traced, tmp_path, tiny_reference):
    model = quantize_weights(traced("fp16"), fp16_scales=True)
    for node in _nodes(model, "MatMulNBits") + _nodes(model, "GatherBlockQuantized"):
        assert node.inputs[2].dtype == ir.DataType.FLOAT16
    runner = GraphRunner(_save(model, tmp_path))
    prompt = seeded_ids(40)
    logits, _ = runner.step(prompt[None], 0, runner.zero_states(1))
    ref = reference_logits(tiny_reference, prompt)
    assert logits.dtype == np.float32  # the graph's contract: logits are fp32 in every dtype
    assert np.abs(logits[0] - ref).max() < Q4_MAX_ABS
    assert mean_kl(ref, logits[0]) < Q4_KL


# --- storage --------------------------------------------------------------------------------


def test_embedding_and_tied_head_read_one_int4_copy(q4_path):
    model = ir.load(q4_path)
    (gather,) = _nodes(model, "GatherBlockQuantized")
    heads = [node for node in _nodes(model, "MatMulNBits") if node.attributes["N"].as_int() == VOCAB]
    assert len(heads) == 1
    head = heads[0]
    reshape = gather.inputs[0].producer()
    assert reshape is not None and reshape.op_type == "Reshape"
    assert reshape.inputs[0] is head.inputs[1]  # the packed table
    assert gather.inputs[2] is head.inputs[2] and gather.inputs[3] is head.inputs[3]  # scales, zero points
    # Nothing else holds a [V, ...] table: no float copy, no second int4 copy.
    vocab_rows = [v for v in model.graph.initializers.values() if v.shape and v.shape[0] == VOCAB]
    assert sorted(v.name for v in vocab_rows) == sorted(v.name for v in head.inputs[1:4])
    blocks = HIDDEN // 32
    expected = VOCAB * HIDDEN // 2 + VOCAB * blocks * 4 + VOCAB * ((blocks + 1) // 2)
    assert sum(v.const_value.nbytes for v in vocab_rows) == expected
    assert not _weight_gathers(model)


def test_every_constant_matmul_is_quantized(q4_path):
    model = ir.load(q4_path)
    float_weights = [node.name for node in _nodes(model, "MatMul") if node.inputs[1].const_value is not None]
    assert not float_weights
    assert len(_nodes(model, "MatMulNBits")) == 32  # 31 projections + the LM head
    assert model.opset_imports["com.microsoft"] == 1


def test_weight_bytes_shrink_about_6x(traced, q4_path):
    fp32 = traced()
    q4 = ir.load(q4_path)
    # Bytes per weight: 4 (fp32) vs 0.5 (int4) + 4/32 (fp32 scale) + 0.5/32 (zero point) = 6.24x.
    # The rest (norms, conv kernels, A_log, ...) stays float: a larger share at tiny size.
    ratio = _initializer_bytes(fp32) / _initializer_bytes(q4)
    assert 5.0 < ratio < 6.3, ratio


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block_size", "accuracy_level", "symmetric"), [(64, 1, False), (16, 0, True), (32, 4, True)]
)
def test_options_reach_the_nodes(traced, block_size, accuracy_level, symmetric):
    model = quantize_weights(
        traced(), fp16_scales=False, block_size=block_size, accuracy_level=accuracy_level, symmetric=symmetric
    )
    matmuls, gathers = _nodes(model, "MatMulNBits"), _nodes(model, "GatherBlockQuantized")
    assert len(matmuls) == 32 and len(gathers) == 1
    for node in matmuls + gathers:
        assert node.attributes["block_size"].as_int() == block_size
        assert node.attributes["bits"].as_int() == 4
        assert len(node.inputs) == (3 if symmetric else 4)
    for node in matmuls:
        level = node.attributes.get_int("accuracy_level", 0)
        assert level == accuracy_level
        k_blocks = -(-node.attributes["K"].as_int() // block_size)
        assert node.inputs[1].shape == ir.Shape([node.attributes["N"].as_int(), k_blocks, block_size // 2])


def test_embedding_left_float_on_request(traced):
    model = quantize_weights(traced(), fp16_scales=False, embedding="float")
    assert not _nodes(model, "GatherBlockQuantized")
    (gather,) = _weight_gathers(model)
    assert gather.inputs[0].name == "model.embed_tokens.weight"
    # The tied head keeps reading the same float table (through its Transpose): still one copy.
    (head,) = _nodes(model, "MatMul")[-1:]
    assert head.inputs[1].producer().inputs[0] is gather.inputs[0]
    assert len(_nodes(model, "MatMulNBits")) == 31


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fp16_scales": True}, "fp16_scales=True"),
        ({"fp16_scales": False, "block_size": 48}, "power of 2"),
        ({"fp16_scales": False, "block_size": 8}, "power of 2"),
        ({"fp16_scales": False, "accuracy_level": 5}, "accuracy_level"),
    ],
)
def test_bad_settings_are_refused(traced, kwargs, message):
    with pytest.raises(ValueError, match=message):
        quantize_weights(traced(), **kwargs)


# --- the block quantizer itself -------------------------------------------------------------


@pytest.mark.parametrize(
    ("symmetric", "steps"),
    # Symmetric maps the larger-magnitude end to -8, so the other end may clip at +7: one step.
    [(False, 0.5), (True, 1.0)],
    ids=["asymmetric", "symmetric"],
)
def test_block_quantize_round_trip_error_within_a_step(symmetric, steps):
    weight = np.random.default_rng(0).standard_normal((96, 40)).astype(np.float32)  # [K, N]
    # A transposed view: the kernel ignores strides, so this also checks the contiguous copy.
    strided = np.asfortranarray(weight)
    quantized = block_quantize(strided, 32, symmetric)
    assert quantized.packed.shape == (40, 3, 16) and quantized.scales.shape == (40, 3)
    error = np.abs(dequantize(quantized, 96) - weight).reshape(3, 32, 40)
    step = np.abs(quantized.scales.T)[:, None, :]  # [k_blocks, 1, N]
    assert np.all(error <= step * steps + 1e-6)
    # Small slabs: the column-slab loop must give the same bytes as one call.
    import qwen35web.export.quantization.nbits as nbits

    saved = nbits.SLAB_ELEMENTS
    nbits.SLAB_ELEMENTS = 96 * 7
    try:
        sliced = block_quantize(weight, 32, symmetric)
    finally:
        nbits.SLAB_ELEMENTS = saved
    assert np.array_equal(sliced.packed, quantized.packed) and np.array_equal(sliced.scales, quantized.scales)
