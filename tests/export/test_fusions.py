"""Kernel fusions of the `--ops fused` graph: what gets fused, and parity with transformers (fp32).

The tiny checkpoint has three Gated DeltaNet layers and one full-attention layer. Its fused graph
is traced here (not taken from a bundle) so the counts describe exactly one `Fusions` run.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
import torch
from onnx import TensorProto, helper

from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.config import read_config_json, spec_from_config
from qwen35web.export.decoder import load_decoder
from qwen35web.export.ort_runner import GraphRunner
from qwen35web.export.passes.choose_ops import choose_ops
from qwen35web.export.passes.fuse_attention import FuseAttention
from qwen35web.export.passes.fuse_norms import FuseRmsNorms
from qwen35web.export.passes.fuse_rotary import FuseRotary
from qwen35web.export.passes.fusions import Fusions, remove_dead_nodes
from qwen35web.export.trace import trace_to_onnx
from qwen35web.export.validate import image_prompt_positions
from qwen35web.runtime.graph_io import text_positions

TOL = 1e-5
# Fused vs the same graph unfused: only rounding order differs.
SELF_TOL = 2e-6
ORT_IR_VERSION = 10  # onnxruntime 1.31 refuses onnx's current default (IR 14)

# Tiny model: 9 hidden-state norms (2 per layer + final; 8 follow a residual Add), q_norm and
# k_norm, 3 gated output norms (their `w * rmsnorm` part), 3 x 2 L2 norms of the delta rule's
# q and k; one attention layer, q and k rotated.
EXPECTED_FUSED = {
    ("com.microsoft", "GroupQueryAttention"): 1,
    ("com.microsoft", "RotaryEmbedding"): 2,
    ("", "SimplifiedLayerNormalization"): 1 + 2 + 3 + 6,
    ("com.microsoft", "SkipSimplifiedLayerNormalization"): 8,
    ("com.microsoft", "GatedRMSNorm"): 0,
}
# What must be gone from the main graph (the If's fallback branch keeps one Softmax).
GONE = [("", op) for op in ("ReduceMean", "ReduceSum", "Pow", "Sqrt", "Reciprocal", "Softmax", "Neg")]


def _op_counts(model: ir.Model, recursive: bool = True) -> collections.Counter[tuple[str, str]]:
    nodes = ir.traversal.RecursiveGraphIterator(model.graph) if recursive else model.graph
    return collections.Counter((node.domain, node.op_type) for node in nodes)


@pytest.fixture(scope="module")
def graphs(tiny_text_dir: Path, tmp_path_factory: pytest.TempPathFactory, caplog_module) -> dict[str, Path]:
    """The tiny checkpoint's `--ops fused` graph before and after Fusions (both GQA modes)."""
    spec = spec_from_config(read_config_json(tiny_text_dir))
    model = choose_ops(trace_to_onnx(load_decoder(spec, Checkpoint(tiny_text_dir))), "fused")
    out = tmp_path_factory.mktemp("fusions")
    ir.save(model, out / "unfused.onnx")
    Fusions()(model)  # the defaults: the log check below reads this run
    ir.save(model, out / "decode_only.onnx")
    model = ir.load(out / "unfused.onnx")
    Fusions(attention=FuseAttention(decode_only=False))(model)
    ir.save(model, out / "where_supported.onnx")
    return {name: out / f"{name}.onnx" for name in ("unfused", "decode_only", "where_supported")}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def caplog_module():
    """Records the `export.passes.fusions` log of the module's single default Fusions run."""
    handler = _Records()
    logger = logging.getLogger("qwen35web.export.passes.fusions")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="module", params=["decode_only", "where_supported"])
def fused(graphs: dict[str, Path], request: pytest.FixtureRequest) -> GraphRunner:
    """GQA on decode steps only (the default), or on every call the CPU kernel accepts."""
    return GraphRunner(graphs[request.param])


def _prompt(n: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 500, size=n, dtype=np.int64)


def _reference_logits(reference, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return reference(torch.from_numpy(ids)[None]).logits[0].numpy()  # [T, V]


@pytest.mark.parametrize("mode", ["decode_only", "where_supported"])
def test_fused_node_counts_and_log(
    graphs: dict[str, Path], caplog_module: list[logging.LogRecord], mode: str
):
    model = ir.load(graphs[mode])
    counts = _op_counts(model)
    assert {op: counts[op] for op in EXPECTED_FUSED} == EXPECTED_FUSED
    assert counts[("", "If")] == 1  # GQA's guard (see attention_fallback)
    main = _op_counts(model, recursive=False)
    assert {op: main[op] for op in GONE} == dict.fromkeys(GONE, 0)
    unfused = ir.load(graphs["unfused"])
    assert len(model.graph) < len(unfused.graph) - 100
    message = " ".join(record.getMessage() for record in caplog_module)
    assert (
        "1 GroupQueryAttention, 2 RotaryEmbedding, 0 GatedRMSNorm, 14 SimplifiedLayerNormalization" in message
    )
    assert "8 SkipSimplifiedLayerNormalization" in message


@pytest.mark.parametrize("length", [1, 40, 130])
def test_prefill_matches_transformers(fused: GraphRunner, graphs, tiny_reference, length: int):
    prompt = _prompt(length)
    logits, states = fused.step(prompt[None], 0, fused.zero_states(1))
    np.testing.assert_allclose(logits[0], _reference_logits(tiny_reference, prompt), rtol=0, atol=TOL)
    unfused = GraphRunner(graphs["unfused"])
    want_logits, want_states = unfused.step(prompt[None], 0, unfused.zero_states(1))
    np.testing.assert_allclose(logits, want_logits, rtol=0, atol=SELF_TOL)
    for got, want in zip(states, want_states, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=SELF_TOL)


def test_32_decode_steps_with_states_fed_back(fused: GraphRunner, tiny_reference):
    prompt, continuation = _prompt(40), _prompt(32, seed=8)
    ref = _reference_logits(tiny_reference, np.concatenate([prompt, continuation]))
    logits, states = fused.step(prompt[None], 0, fused.zero_states(1))
    np.testing.assert_allclose(logits[0], ref[:40], rtol=0, atol=TOL)
    for i, token in enumerate(continuation):
        logits, states = fused.step(np.array([[token]]), 40 + i, states)
        np.testing.assert_allclose(logits[0, 0], ref[40 + i], rtol=0, atol=TOL, err_msg=f"decode step {i}")


def test_split_prompt_100_plus_30(fused: GraphRunner, tiny_reference):
    prompt = _prompt(130)
    first, states = fused.step(prompt[None, :100], 0, fused.zero_states(1))
    second, _ = fused.step(prompt[None, 100:], 100, states)
    got = np.concatenate([first[0], second[0]])
    np.testing.assert_allclose(got, _reference_logits(tiny_reference, prompt), rtol=0, atol=TOL)


def test_batch_of_two_with_left_padding(fused: GraphRunner, tiny_reference):
    long, short = _prompt(12, seed=1), _prompt(9, seed=2)
    ids = np.stack([long, np.concatenate([np.zeros(3, np.int64), short])])
    mask = np.ones((2, 12), np.int64)
    mask[1, :3] = 0
    logits, _ = fused.step(ids, 0, fused.zero_states(2), mask=mask)
    np.testing.assert_allclose(logits[0], _reference_logits(tiny_reference, long), rtol=0, atol=TOL)
    np.testing.assert_allclose(logits[1, 3:], _reference_logits(tiny_reference, short), rtol=0, atol=TOL)


def test_batched_chunk_after_a_past_takes_the_fallback(fused: GraphRunner, tiny_reference):
    """Batch 2, 5 new tokens on 10 cached ones: the CPU kernel refuses it, the If's other branch runs."""
    rows = np.stack([_prompt(16, seed=4), _prompt(16, seed=5)])
    first, states = fused.step(rows[:, :10], 0, fused.zero_states(2))  # no past: GQA
    second, states = fused.step(rows[:, 10:15], 10, states)  # batch 2, past 10, 5 tokens: fallback
    third, _ = fused.step(rows[:, 15:], 15, states)  # one token: GQA again
    for row in range(2):
        got = np.concatenate([first[row], second[row], third[row]])
        want = _reference_logits(tiny_reference, rows[row])
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL, err_msg=f"row {row}")


def test_distinct_mrope_rows_through_rotary_and_gqa(fused: GraphRunner, tiny_reference):
    """The kernels read cos/sin caches made from this call's own interleaved angles: an image's
    distinct position rows stay exact through RotaryEmbedding, GQA (decode) and the fallback branch."""
    ids = _prompt(44, seed=6)
    positions = np.concatenate(
        [image_prompt_positions(36), np.array(text_positions(37, 8))], axis=1
    )  # [3, 44]
    with torch.no_grad():
        position_ids = torch.from_numpy(positions)[:, None]
        ref = tiny_reference(torch.from_numpy(ids)[None], position_ids=position_ids).logits[0].numpy()
    logits, states = fused.step(ids[None, :36], 0, fused.zero_states(1), positions=positions[:, None, :36])
    np.testing.assert_allclose(logits[0], ref[:36], rtol=0, atol=TOL)
    for i in range(36, 44):
        logits, states = fused.step(ids[None, i : i + 1], i, states, positions=positions[:, None, i : i + 1])
        np.testing.assert_allclose(logits[0, 0], ref[i], rtol=0, atol=TOL, err_msg=f"decode step {i}")
    rows = np.stack([ids, ids])  # batch 2, several tokens on a past: the If's standard-ops branch
    batch_positions = np.broadcast_to(positions[:, None], (3, 2, 44))
    _, states = fused.step(rows[:, :30], 0, fused.zero_states(2), positions=batch_positions[:, :, :30])
    second, _ = fused.step(rows[:, 30:], 30, states, positions=batch_positions[:, :, 30:])
    np.testing.assert_allclose(second, np.stack([ref[30:], ref[30:]]), rtol=0, atol=TOL)


def _unfused_copy(graphs: dict[str, Path]) -> ir.Model:
    return ir.load(graphs["unfused"])


def _run_against_unfused(model: ir.Model, graphs: dict[str, Path], path: Path) -> None:
    ir.save(model, path)
    got, want = GraphRunner(path), GraphRunner(graphs["unfused"])
    prompt = _prompt(33, seed=11)
    got_logits, got_states = got.step(prompt[None], 0, got.zero_states(1))
    want_logits, _ = want.step(prompt[None], 0, want.zero_states(1))
    np.testing.assert_allclose(got_logits, want_logits, rtol=0, atol=SELF_TOL)
    got_logits, _ = got.step(prompt[None, :1], 33, got_states)
    assert np.isfinite(got_logits).all()
    image = image_prompt_positions(33)[:, None]  # distinct MRoPE rows
    got_logits, _ = got.step(prompt[None], 0, got.zero_states(1), positions=image)
    want_logits, _ = want.step(prompt[None], 0, want.zero_states(1), positions=image)
    np.testing.assert_allclose(got_logits, want_logits, rtol=0, atol=SELF_TOL)


def test_rotary_alone_on_the_traced_layout(graphs: dict[str, Path], tmp_path: Path):
    """Without GQA (FuseRotary by itself) the kernel rotates the traced [B, H, T, hd] tensors."""
    model = _unfused_copy(graphs)
    rotary = FuseRotary()
    assert rotary(model).modified
    assert rotary.count == 2
    remove_dead_nodes(model.graph)
    assert _op_counts(model)[("", "Neg")] == 0
    _run_against_unfused(model, graphs, tmp_path / "rotary.onnx")


def test_gated_norm_kernel_is_opt_in(graphs: dict[str, Path], tmp_path: Path):
    model = _unfused_copy(graphs)
    norms = FuseRmsNorms(gated_kernel=True)
    norms(model)
    assert norms.counts == {"GatedRMSNorm": 3, "SimplifiedLayerNormalization": 11, "L2Norm": 6}
    remove_dead_nodes(model.graph)
    _run_against_unfused(model, graphs, tmp_path / "gated.onnx")


# ---------------------------------------------------------------------------------------------
# Small hand-built graphs: weight folding and when a norm must not be fused.
# ---------------------------------------------------------------------------------------------
def _rms_norm_graph(extra_output: str | None) -> ir.Model:
    """y = x * rsqrt(mean(x^2) + eps) * (1 + w) with `1 + w` left as an Add; `w` also feeds `w_out`."""
    const = helper.make_tensor
    nodes = [
        helper.make_node("Pow", ["x", "two"], ["square"]),
        helper.make_node("ReduceMean", ["square", "last"], ["mean"], keepdims=1),
        helper.make_node("Add", ["mean", "eps"], ["shifted"]),
        helper.make_node("Sqrt", ["shifted"], ["root"]),
        helper.make_node("Reciprocal", ["root"], ["inverse"]),
        helper.make_node("Mul", ["x", "inverse"], ["normed"]),
        helper.make_node("Add", ["one", "w"], ["scale"]),
        helper.make_node("Mul", ["normed", "scale"], ["y"]),
        helper.make_node("Mul", ["x", "w"], ["w_out"]),
    ]
    weight = np.linspace(-0.5, 0.5, 8, dtype=np.float32)
    initializers = [
        const("two", TensorProto.FLOAT, [], [2.0]),
        const("eps", TensorProto.FLOAT, [], [1e-6]),
        const("one", TensorProto.FLOAT, [], [1.0]),
        const("last", TensorProto.INT64, [1], [-1]),
        const("w", TensorProto.FLOAT, [8], weight.tolist()),
    ]
    outputs = ["y", "w_out", *([extra_output] if extra_output else [])]
    graph = helper.make_graph(
        nodes,
        "rms",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=ORT_IR_VERSION)
    return ir.serde.deserialize_model(proto)


def _run(model: ir.Model, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    proto = ir.serde.serialize_model(model)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_one_plus_w_is_folded_into_a_new_initializer_and_shared_w_kept():
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    want = _run(_rms_norm_graph(None), x)
    model = _rms_norm_graph(None)
    norms = FuseRmsNorms()
    assert norms(model).modified
    assert norms.counts == {"GatedRMSNorm": 0, "SimplifiedLayerNormalization": 1, "L2Norm": 0}
    remove_dead_nodes(model.graph)
    (norm,) = [node for node in model.graph if node.op_type == "SimplifiedLayerNormalization"]
    scale = norm.inputs[1]
    assert scale is not None and scale.const_value is not None and scale.name != "w"
    np.testing.assert_array_equal(scale.const_value.numpy(), 1 + np.linspace(-0.5, 0.5, 8, dtype=np.float32))
    assert "w" in model.graph.initializers  # still read by `w_out`
    assert [node.op_type for node in model.graph] == ["SimplifiedLayerNormalization", "Mul"]
    for got, expected in zip(_run(model, x), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_norm_with_an_intermediate_read_elsewhere_is_left_alone():
    model = _rms_norm_graph(extra_output="inverse")
    before = [node.op_type for node in model.graph]
    norms = FuseRmsNorms()
    assert not norms(model).modified
    assert norms.counts == {"GatedRMSNorm": 0, "SimplifiedLayerNormalization": 0, "L2Norm": 0}
    assert [node.op_type for node in model.graph] == before
