"""Parity of the causal conv with state across its five implementations.

numpy reference (the spec) vs portable ONNX function body in onnxruntime vs the fused
com.microsoft lowering in onnxruntime vs the torch custom op vs transformers' torch fallback
(``causal_conv1d_update`` fed a K-1 wide state; ``causal_conv1d_fn`` when the past is zero).
Present states are pure copies, so they must match bit for bit everywhere.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from transformers.models.qwen3_5.modeling_qwen3_5 import causal_conv1d_fn, causal_conv1d_update

from qwen35web.export.ops import causal_conv
from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, MS_DOMAIN, ONNX_OPSET

# onnxruntime 1.31 refuses IR version 14, onnx's current default.
ORT_IR_VERSION = 10
NP_DTYPES = {"fp32": np.float32, "fp16": np.float16}
ONNX_DTYPES = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16}
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
# Outputs compared as |got - want| <= atol + rtol * |want|, want = fp32 reference on the same
# (dtype-rounded) inputs. fp16 sums in fp16 in some implementations: a few ulps at |y| ~ 8.
TOLERANCES = {"fp32": (1e-5, 1e-6), "fp16": (4e-3, 4e-3)}

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ConvCase:
    steps: int  # T
    channels: int  # C
    taps: int  # K
    batch: int  # B
    past: str  # "zero" (start of a sequence) or "random"
    dtype: str  # "fp32" or "fp16"
    activation: str = "silu"

    @property
    def id(self) -> str:
        shape = f"T{self.steps}-C{self.channels}-K{self.taps}-B{self.batch}"
        return f"{shape}-{self.past}-{self.dtype}-{self.activation}"


def _parity_cases() -> list[ConvCase]:
    shapes = [(8, 1), (96, 2)]  # (C, B): odd group count 96 together with batch 2
    cases = [
        ConvCase(steps, channels, taps, batch, past, dtype)
        for steps, (channels, batch), taps, past, dtype in itertools.product(
            [1, 2, 3, 4, 63, 64, 65, 130], shapes, [4, 2], ["zero", "random"], ["fp32", "fp16"]
        )
    ]
    cases += [
        ConvCase(steps, 96, 4, 2, "random", dtype, "none") for steps in (1, 2, 65) for dtype in NP_DTYPES
    ]
    return cases


CASES = _parity_cases()


def _inputs(case: ConvCase, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = NP_DTYPES[case.dtype]
    x = rng.standard_normal((case.batch, case.channels, case.steps)).astype(dtype)  # [B, C, T]
    weight = rng.standard_normal((case.channels, 1, case.taps)).astype(dtype)  # [C, 1, K]
    past = rng.standard_normal((case.batch, case.channels, case.taps - 1)).astype(dtype)  # [B, C, K-1]
    if case.past == "zero":
        past = np.zeros_like(past)
    return x, weight, past


# ---------------------------------------------------------------------------------------------
# Single-node ONNX models
# ---------------------------------------------------------------------------------------------
def _custom_node_model(dtype: str, activation: str, channels: int) -> onnx.ModelProto:
    """One CausalConv1DWithState node with its portable body attached as a model-local function."""
    elem = ONNX_DTYPES[dtype]
    node = helper.make_node(
        causal_conv.OP_TYPE,
        ["x", "weight", "past_state"],
        ["y", "present_state"],
        domain=DOMAIN,
        activation=activation,
        channels=channels,
    )
    graph = helper.make_graph(
        [node],
        "causal_conv",
        [
            helper.make_tensor_value_info("x", elem, ["B", channels, "T"]),
            helper.make_tensor_value_info("weight", elem, [channels, 1, "K"]),
            helper.make_tensor_value_info("past_state", elem, ["B", channels, "S"]),
        ],
        [
            helper.make_tensor_value_info("y", elem, ["B", channels, "T"]),
            helper.make_tensor_value_info("present_state", elem, ["B", channels, "S"]),
        ],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        functions=[causal_conv.function_proto()],
        ir_version=ORT_IR_VERSION,
    )


def _lower_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Apply lower_to_ort to every custom node, the way the export pass splices it."""
    model_ir = ir.from_proto(model)
    graph = model_ir.graph
    for node in [n for n in graph if n.domain == DOMAIN and n.op_type == causal_conv.OP_TYPE]:
        new_nodes, new_values = causal_conv.lower_to_ort(node)
        ir.convenience.replace_nodes_and_values(
            graph, node, [node], new_nodes, list(node.outputs), new_values
        )
    model_ir.functions.clear()
    model_ir.opset_imports.pop(DOMAIN, None)
    model_ir.opset_imports[MS_DOMAIN] = 1
    return ir.to_proto(model_ir)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@functools.cache
def _ort_session(impl: str, dtype: str, activation: str, channels: int) -> ort.InferenceSession:
    model = _custom_node_model(dtype, activation, channels)
    return _session(_lower_model(model) if impl == "fused" else model)


# ---------------------------------------------------------------------------------------------
# The implementations under test, each (x, weight, past, activation) -> (y, present) in numpy
# ---------------------------------------------------------------------------------------------
def _run_ort(impl: str) -> Callable[..., Arrays]:
    def run(x: np.ndarray, weight: np.ndarray, past: np.ndarray, activation: str) -> Arrays:
        dtype = "fp16" if x.dtype == np.float16 else "fp32"
        session = _ort_session(impl, dtype, activation, x.shape[1])
        y, present = session.run(None, {"x": x, "weight": weight, "past_state": past})
        return y, present

    return run


def _run_eager(x: np.ndarray, weight: np.ndarray, past: np.ndarray, activation: str) -> Arrays:
    y, present = causal_conv.causal_conv1d_with_state(
        torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(past), activation
    )
    return y.numpy(), present.numpy()


def _run_hf_update(x: np.ndarray, weight: np.ndarray, past: np.ndarray, activation: str) -> Arrays:
    # transformers' decode path; given a K-1 wide state it computes exactly this op, in place.
    state = torch.from_numpy(past.copy())
    y = causal_conv1d_update(
        torch.from_numpy(x), state, torch.from_numpy(weight)[:, 0, :], None, _hf_activation(activation)
    )
    return y.numpy(), state.numpy()


def _hf_activation(activation: str) -> str | None:
    return None if activation == "none" else activation


IMPLEMENTATIONS: dict[str, Callable[..., Arrays]] = {
    "portable": _run_ort("portable"),
    "fused": _run_ort("fused"),
    "eager": _run_eager,
    "hf_update": _run_hf_update,
}


def _reference(x: np.ndarray, weight: np.ndarray, past: np.ndarray, activation: str) -> Arrays:
    return causal_conv.reference(x, weight, past, activation)


def _max_abs(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float32) - want.astype(np.float32)), initial=0.0))


def _assert_close(name: str, got: np.ndarray, want: np.ndarray, dtype: str) -> None:
    atol, rtol = TOLERANCES[dtype]
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    excess = np.abs(got.astype(np.float32) - want) - (atol + rtol * np.abs(want))
    assert np.all(excess <= 0), f"{name}: max-abs {_max_abs(got, want):.3g} beyond atol={atol} rtol={rtol}"


# ---------------------------------------------------------------------------------------------
# Parity table
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_parity(case: ConvCase) -> None:
    x, weight, past = _inputs(case)
    want_y, want_state = _reference(x, weight, past, case.activation)
    assert want_y.dtype == np.float32 and want_state.shape == past.shape
    for name, impl in IMPLEMENTATIONS.items():
        y, state = impl(x, weight, past, case.activation)
        assert y.dtype == x.dtype and state.dtype == past.dtype, name
        _assert_close(name, y, want_y, case.dtype)
        np.testing.assert_array_equal(state, want_state.astype(past.dtype), err_msg=f"{name} present_state")
    if case.past == "zero":
        # transformers' prefill path (left zero padding) must agree with a zero past state.
        hf_y = causal_conv1d_fn(
            torch.from_numpy(x),
            torch.from_numpy(weight)[:, 0, :],
            None,
            activation=_hf_activation(case.activation),
        )
        _assert_close("hf_fn", hf_y.numpy(), want_y, case.dtype)


def test_reference_hand_computed() -> None:
    # One channel, K=3: y_t = 1*p_{t-2} + 10*p_{t-1} + 100*x_t over padded [1, 2 | 3, 4].
    x = np.array([[[3.0, 4.0]]], np.float32)
    weight = np.array([[[1.0, 10.0, 100.0]]], np.float32)
    past = np.array([[[1.0, 2.0]]], np.float32)
    y, state = causal_conv.reference(x, weight, past, "none")
    np.testing.assert_array_equal(y, [[[1 + 20 + 300, 2 + 30 + 400]]])
    np.testing.assert_array_equal(state, [[[3.0, 4.0]]])
    y_silu, _ = causal_conv.reference(x, weight, past, "silu")
    np.testing.assert_allclose(y_silu, y, rtol=1e-6)  # silu(z) ~ z for large z


@pytest.mark.parametrize("steps", [1, 2])
def test_short_input_keeps_old_state_columns(steps: int) -> None:
    # T < K-1: the present state is the newest K-1 columns, partly from the past state.
    case = ConvCase(steps, 8, 4, 2, "random", "fp32")
    x, weight, past = _inputs(case)
    expected = np.concatenate([past[:, :, steps:], x], axis=-1)
    for name, impl in IMPLEMENTATIONS.items():
        _, state = impl(x, weight, past, "silu")
        np.testing.assert_array_equal(state, expected, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Streaming: carrying the state must reproduce the whole sequence
# ---------------------------------------------------------------------------------------------
def _stream(
    impl: Callable[..., Arrays], x: np.ndarray, weight: np.ndarray, past: np.ndarray, sizes: list[int]
):
    outputs, start = [], 0
    for size in sizes:
        y, past = impl(x[:, :, start : start + size], weight, past, "silu")
        outputs.append(y)
        start += size
    return np.concatenate(outputs, axis=-1), past


@pytest.mark.parametrize("impl_name", ["reference", *IMPLEMENTATIONS])
def test_split_equals_whole(impl_name: str) -> None:
    impl = _reference if impl_name == "reference" else IMPLEMENTATIONS[impl_name]
    x, weight, past = _inputs(ConvCase(130, 96, 4, 2, "random", "fp32"), seed=1)
    whole_y, whole_state = impl(x, weight, past, "silu")
    for sizes in ([100, 30], [1] * 130):
        y, state = _stream(impl, x, weight, past, sizes)
        # Same math; onnxruntime picks other Conv loops for T=1, hence fp32 rounding, not exact.
        _assert_close(f"{impl_name} split {sizes[:2]}", y, whole_y, "fp32")
        np.testing.assert_array_equal(state, whole_state)


def test_hf_k_wide_state_agrees() -> None:
    # transformers keeps K state columns; the oldest one never reaches an output (DESIGN.md).
    x, weight, past = _inputs(ConvCase(3, 8, 4, 2, "random", "fp32"))
    hf_state = torch.from_numpy(np.concatenate([np.full_like(past[:, :, :1], 7.0), past], axis=-1))
    hf_y = causal_conv1d_update(
        torch.from_numpy(x), hf_state, torch.from_numpy(weight)[:, 0, :], None, "silu"
    )
    y, state = _run_eager(x, weight, past, "silu")
    _assert_close("hf K-wide", hf_y.numpy(), y, "fp32")  # a longer conv: other loops, same math
    np.testing.assert_array_equal(hf_state.numpy()[:, :, 1:], state)


# ---------------------------------------------------------------------------------------------
# Structure: function body, lowering, torch op registration, validation
# ---------------------------------------------------------------------------------------------
def test_function_proto_uses_standard_ops_only() -> None:
    proto = causal_conv.function_proto()
    assert (proto.domain, proto.name) == (DOMAIN, causal_conv.OP_TYPE)
    assert {node.domain for node in proto.node} == {""}
    assert {(o.domain, o.version) for o in proto.opset_import} == {("", ONNX_OPSET)}
    assert list(proto.attribute) == ["channels"]
    assert [(a.name, a.s) for a in proto.attribute_proto] == [("activation", b"silu")]
    assert [n.op_type for n in proto.node].count("Conv") == 1


def test_default_activation_is_silu_in_every_implementation() -> None:
    case = ConvCase(5, 8, 4, 1, "random", "fp32")
    x, weight, past = _inputs(case)
    want_y, _ = causal_conv.reference(x, weight, past)
    node_model = _custom_node_model("fp32", "silu", 8)
    del node_model.graph.node[0].attribute[0]  # drop activation: the defaults must apply
    assert [a.name for a in node_model.graph.node[0].attribute] == ["channels"]
    for model in (node_model, _lower_model(node_model)):
        y, _ = _session(model).run(None, {"x": x, "weight": weight, "past_state": past})
        _assert_close("default", y, want_y, "fp32")
    eager_y, _ = causal_conv.TORCH_OP(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(past))
    _assert_close("eager default", eager_y.numpy(), want_y, "fp32")


def test_lower_to_ort_builds_one_contrib_node() -> None:
    model_ir = ir.from_proto(_custom_node_model("fp32", "none", 8))
    node = next(iter(model_ir.graph))
    new_nodes, new_values = causal_conv.lower_to_ort(node)
    assert len(new_nodes) == 1 and len(new_values) == 2
    fused = new_nodes[0]
    assert (fused.domain, fused.op_type) == (MS_DOMAIN, "CausalConvWithState")
    assert fused.inputs[2] is None  # no bias
    assert fused.inputs[0] is node.inputs[0] and fused.inputs[3] is node.inputs[2]
    assert fused.attributes.get_string("activation") == "none"
    assert fused.attributes.get_int("ndim") == 1
    assert list(new_values) == list(fused.outputs)


def test_torch_op_registration() -> None:
    x = torch.randn(2, 8, 5)
    weight = torch.randn(8, 1, 4)
    past = torch.randn(2, 8, 3)
    torch.library.opcheck(
        causal_conv.TORCH_OP, (x, weight, past, "silu"), test_utils=("test_schema", "test_faketensor")
    )
    assert causal_conv.TORCH_OP._name == causal_conv.TORCH_OP_NAME


def test_unknown_activation_is_rejected() -> None:
    x, weight, past = _inputs(ConvCase(2, 8, 4, 1, "random", "fp32"))
    with pytest.raises(ValueError, match="activation"):
        causal_conv.reference(x, weight, past, "gelu")
    with pytest.raises(ValueError, match="activation"):
        _run_eager(x, weight, past, "gelu")
    model_ir = ir.from_proto(_custom_node_model("fp32", "gelu", 8))
    with pytest.raises(ValueError, match="activation"):
        causal_conv.lower_to_ort(next(iter(model_ir.graph)))


def test_schema_registration_is_idempotent() -> None:
    causal_conv.register_onnx_schema()
    causal_conv.register_onnx_schema()
    schema = onnx.defs.get_schema(causal_conv.OP_TYPE, DOMAIN_VERSION, DOMAIN)
    assert [o.name for o in schema.outputs] == ["y", "present_state"]


# ---------------------------------------------------------------------------------------------
# Export: the torch op becomes exactly one custom node, with a dynamic sequence length
# ---------------------------------------------------------------------------------------------
class _TinyConvModule(torch.nn.Module):
    def __init__(self, channels: int, taps: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(channels, 1, taps))

    def forward(self, x: torch.Tensor, past_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, present_state = causal_conv.causal_conv1d_with_state(x, self.weight, past_state)
        return y * 2.0, present_state


@pytest.fixture(scope="module")
def exported() -> tuple[_TinyConvModule, onnx.ModelProto]:
    torch.manual_seed(0)
    module = _TinyConvModule(channels=12, taps=4).eval()
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        module,
        (torch.randn(1, 12, 5), torch.randn(1, 12, 3)),
        dynamo=True,
        custom_translation_table={causal_conv.TORCH_OP: causal_conv.onnx_translation},
        dynamic_shapes={
            "x": {0: batch, 2: torch.export.Dim("seq")},
            "past_state": {0: batch},
        },
        verbose=False,
    )
    return module, program.model_proto


def test_export_emits_one_custom_node(exported: tuple[_TinyConvModule, onnx.ModelProto]) -> None:
    _, model = exported
    custom = [n for n in model.graph.node if n.domain == DOMAIN]
    assert [n.op_type for n in custom] == [causal_conv.OP_TYPE]
    attrs = {a.name: helper.get_attribute_value(a) for a in custom[0].attribute}
    assert attrs == {"activation": b"silu", "channels": 12}
    assert (DOMAIN, DOMAIN_VERSION) in {(o.domain, o.version) for o in model.opset_import}
    seq_dim = model.graph.input[0].type.tensor_type.shape.dim[2]
    assert seq_dim.dim_param and not seq_dim.HasField("dim_value")


@pytest.mark.parametrize("impl", ["portable", "fused"])
def test_exported_model_runs(exported: tuple[_TinyConvModule, onnx.ModelProto], impl: str) -> None:
    module, model = exported
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.functions.append(causal_conv.function_proto())
    if impl == "fused":
        model = _lower_model(model)
    model.ir_version = min(model.ir_version, ORT_IR_VERSION)
    session = _session(model)
    input_names = [i.name for i in session.get_inputs()]
    rng = np.random.default_rng(3)
    for batch, steps in [(1, 1), (2, 7)]:
        x = rng.standard_normal((batch, 12, steps)).astype(np.float32)
        past = rng.standard_normal((batch, 12, 3)).astype(np.float32)
        y, state = session.run(None, dict(zip(input_names, [x, past], strict=True)))
        with torch.no_grad():
            want_y, want_state = module(torch.from_numpy(x), torch.from_numpy(past))
        _assert_close(f"{impl} T={steps}", y, want_y.numpy(), "fp32")
        np.testing.assert_array_equal(state, want_state.numpy())


@pytest.mark.parametrize("activation", ["silu", "none"])
def test_specialised_body_matches_reference_and_has_no_string_ops(activation: str) -> None:
    """The body attached to graphs whose nodes share one activation: no string tensors (WebGPU)."""
    proto = causal_conv.function_proto(activation)
    assert not {"Unique", "Where"} & {n.op_type for n in proto.node}
    assert all(a.type != onnx.AttributeProto.STRINGS for n in proto.node for a in n.attribute)
    model = _custom_node_model("fp32", activation, 8)
    del model.functions[:]
    model.functions.append(proto)
    case = ConvCase(steps=5, channels=8, taps=4, batch=2, past="random", dtype="fp32", activation=activation)
    x, weight, past = _inputs(case)
    y, present = _session(model).run(None, {"x": x, "weight": weight, "past_state": past})
    want_y, want_present = _reference(x, weight, past, activation)
    _assert_close("y", y, want_y, "fp32")
    np.testing.assert_array_equal(present, want_present)
