"""Parity of the gated delta rule across its five implementations.

numpy reference (the spec) vs the portable ONNX function body in onnxruntime vs the fused
``com.microsoft::LinearAttention`` lowering in onnxruntime vs the torch custom op (eager) vs
transformers' torch fallback (``torch_chunk_gated_delta_rule`` for T > 1,
``torch_recurrent_gated_delta_rule`` for T = 1). Run this file as a script to print the table.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from transformers.models.qwen3_5.modeling_qwen3_5 import (
    torch_chunk_gated_delta_rule,
    torch_recurrent_gated_delta_rule,
)

from qwen35web.export.ops import gated_delta_rule as gdr
from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, ONNX_OPSET

# onnxruntime 1.31 refuses IR version 14, onnx's current default.
ORT_IR_VERSION = 10
NP_DTYPES = {"fp32": np.float32, "fp16": np.float16}
ONNX_DTYPES = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16}
# |got - want| <= atol + rtol * |want| against the float32 reference on the same (dtype-rounded)
# inputs. The state is float32 in every dtype; an fp16 output is rounded once (|o| ~ 4: 2e-3 ulp).
TOLERANCES = {"fp32": (1e-5, 1e-5), "fp16": (4e-3, 2e-3)}
STATE_TOLERANCE = (1e-5, 1e-5)
INPUT_ORDER = ("query", "key", "value", "g", "beta", "initial_state")
Arrays = tuple[np.ndarray, np.ndarray]  # (output, final_state)
Inputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class DeltaCase:
    steps: int  # T
    key_heads: int = 2  # Hk
    value_heads: int = 2  # Hv
    key_dim: int = 16  # Dk
    value_dim: int = 16  # Dv
    batch: int = 1
    state: str = "random"  # "zero" (start of a sequence) or "random"
    decay: str = "model"  # "model" (trained-like), "strong" (g down to about -50) or "none" (g = 0)
    dtype: str = "fp32"  # q, k, v, beta (g stays float32 as in the model)
    scale: float | None = None  # None: Dk ** -0.5, what the model passes

    @property
    def id(self) -> str:
        shape = f"T{self.steps}-B{self.batch}-Hk{self.key_heads}-Hv{self.value_heads}"
        dims = f"Dk{self.key_dim}-Dv{self.value_dim}"
        scale = "" if self.scale is None else f"-scale{self.scale}"
        return f"{shape}-{dims}-{self.state}-{self.decay}-{self.dtype}{scale}"

    @property
    def query_scale(self) -> float:
        return self.key_dim**-0.5 if self.scale is None else self.scale


def _parity_cases() -> list[DeltaCase]:
    cases = []
    for steps in (1, 2, 63, 64, 65, 130):
        cases.append(DeltaCase(steps, state="zero"))
        cases.append(DeltaCase(steps, 2, 4, 16, 24, batch=2))
    cases += [
        DeltaCase(65, 2, 4, 16, 24, batch=2, decay="strong"),
        DeltaCase(130, 2, 2, 16, 16, decay="none"),
        DeltaCase(65, 2, 4, 16, 24, state="zero", decay="strong"),
        DeltaCase(65, 16, 32, 128, 128),  # the 4B/9B layer shape
        DeltaCase(1, 16, 32, 128, 128),
        DeltaCase(70, 2, 4, 16, 24, scale=0.1),
    ]
    cases += [DeltaCase(steps, 2, 4, 16, 24, batch=2, dtype="fp16") for steps in (1, 65)]
    return cases


CASES = _parity_cases()


def _model_like_decay(rng: np.random.Generator, shape: tuple[int, int, int], kind: str) -> np.ndarray:
    """g = -exp(A_log) * softplus(a + dt_bias) per value head, like the model computes it."""
    heads = shape[2]
    if kind == "none":
        return np.zeros(shape, np.float32)
    if kind == "model":
        # A in [0.01, 16] (transformers' init); dt_bias = softplus^-1(dt), dt log-uniform in [1e-3, 0.1].
        a_log = np.log(rng.uniform(0.01, 16.0, heads))
        dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), heads))
        dt_bias = dt + np.log(-np.expm1(-dt))
        a = rng.standard_normal(shape)
    else:  # "strong": A in [1, 16], dt_bias = 1 (transformers' init): g mostly in [-50, -2]
        a_log = np.log(rng.uniform(1.0, 16.0, heads))
        dt_bias = np.ones(heads)
        a = 2.0 * rng.standard_normal(shape)
    softplus = np.logaddexp(0.0, a + dt_bias)
    return (-np.exp(a_log) * softplus).astype(np.float32)


def _l2_normalised(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-6)


def _inputs(case: DeltaCase, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = NP_DTYPES[case.dtype]
    b, t = case.batch, case.steps
    key_shape = (b, t, case.key_heads, case.key_dim)
    state = rng.standard_normal((b, case.value_heads, case.key_dim, case.value_dim)).astype(np.float32)
    return {
        "query": _l2_normalised(rng.standard_normal(key_shape)).astype(dtype),
        "key": _l2_normalised(rng.standard_normal(key_shape)).astype(dtype),
        "value": rng.standard_normal((b, t, case.value_heads, case.value_dim)).astype(dtype),
        "g": _model_like_decay(rng, (b, t, case.value_heads), case.decay),
        "beta": (1.0 / (1.0 + np.exp(-1.5 * rng.standard_normal((b, t, case.value_heads))))).astype(dtype),
        "initial_state": state if case.state == "random" else np.zeros_like(state),
    }


# ---------------------------------------------------------------------------------------------
# The five implementations
# ---------------------------------------------------------------------------------------------


def _run_reference(case: DeltaCase, inputs: Inputs) -> Arrays:
    query, key, value, g, beta, state = (inputs[name].astype(np.float32) for name in INPUT_ORDER)
    return gdr.reference(query, key, value, g, beta, state, case.query_scale)


def _single_node_model(dtype: str, scale: float) -> onnx.ModelProto:
    """One GatedDeltaRule node with every dim symbolic; the portable body rides along as a function."""
    tensor = ONNX_DTYPES[dtype]
    types = {"g": TensorProto.FLOAT, "initial_state": TensorProto.FLOAT}
    ranks = {"g": 3, "beta": 3}
    inputs = [
        helper.make_tensor_value_info(
            name, types.get(name, tensor), [f"{name}_{axis}" for axis in range(ranks.get(name, 4))]
        )
        for name in INPUT_ORDER
    ]
    outputs = [
        helper.make_tensor_value_info("output", tensor, ["B", "T", "Hv", "Dv"]),
        helper.make_tensor_value_info("final_state", TensorProto.FLOAT, ["B", "Hv", "Dk", "Dv"]),
    ]
    node = helper.make_node(
        gdr.OP_TYPE, list(INPUT_ORDER), ["output", "final_state"], domain=DOMAIN, scale=scale
    )
    graph = helper.make_graph([node], "gated_delta_rule", inputs, outputs)
    opsets = [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=ORT_IR_VERSION)


@functools.cache
def _portable_session(dtype: str, scale: float) -> ort.InferenceSession:
    model = _single_node_model(dtype, scale)
    model.functions.append(gdr.function_proto())
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _lowered_model(
    case: DeltaCase, static_inputs: tuple[str, ...] = ("query", "key", "value")
) -> onnx.ModelProto:
    """The single-node model, rewritten the way the lead's pass does.

    Head counts and head dims are made static on ``static_inputs`` only (B and T stay symbolic).
    """
    model = ir.serde.deserialize_model(_single_node_model(case.dtype, case.query_scale))
    graph = model.graph
    trailing = {
        "query": [case.key_heads, case.key_dim],
        "key": [case.key_heads, case.key_dim],
        "value": [case.value_heads, case.value_dim],
        "g": [case.value_heads],
        "beta": [case.value_heads],
        "initial_state": [case.value_heads, case.key_dim, case.value_dim],
    }
    for value in graph.inputs:
        if value.name in static_inputs:
            assert value.shape is not None and value.name is not None
            leading = len(value.shape) - len(trailing[value.name])
            value.shape = ir.Shape([*value.shape[:leading], *trailing[value.name]])
    node = next(iter(graph))
    new_nodes, new_values = gdr.lower_to_ort(node)
    ir.convenience.replace_nodes_and_values(graph, node, [node], new_nodes, list(node.outputs), new_values)
    model.opset_imports["com.microsoft"] = 1
    return ir.serde.serialize_model(model)


def _run_session(session: ort.InferenceSession, inputs: Inputs) -> Arrays:
    output, state = session.run(None, inputs)
    return output, state


def _run_portable(case: DeltaCase, inputs: Inputs) -> Arrays:
    return _run_session(_portable_session(case.dtype, case.query_scale), inputs)


@functools.cache
def _fused_session(case: DeltaCase) -> ort.InferenceSession:
    return ort.InferenceSession(_lowered_model(case).SerializeToString(), providers=["CPUExecutionProvider"])


def _run_fused(case: DeltaCase, inputs: Inputs) -> Arrays:
    # The lowered model depends on head counts, dims, dtype and scale, not on T or B.
    return _run_session(_fused_session(replace(case, steps=0, batch=0, state="", decay="")), inputs)


def _torch_inputs(inputs: Inputs) -> list[torch.Tensor]:
    return [torch.from_numpy(inputs[name]) for name in INPUT_ORDER]


def _run_eager(case: DeltaCase, inputs: Inputs) -> Arrays:
    query, key, value, g, beta, initial_state = _torch_inputs(inputs)
    output, state = gdr.gated_delta_rule(query, key, value, g, beta, initial_state, case.query_scale)
    return output.numpy(), state.numpy()


def _run_transformers(case: DeltaCase, inputs: Inputs) -> Arrays | None:
    """transformers' torch fallback itself; it only knows the Dk ** -0.5 scale."""
    if case.scale is not None:
        return None
    query, key, value, g, beta, state = _torch_inputs(inputs)
    fallback = torch_recurrent_gated_delta_rule if case.steps == 1 else torch_chunk_gated_delta_rule
    output, final_state = fallback(
        query, key, value, g=g, beta=beta, initial_state=state, output_final_state=True
    )
    return output.numpy(), final_state.numpy()


# The implementations under test; transformers' fallback joins them where it applies.
IMPLEMENTATIONS: dict[str, Callable[[DeltaCase, Inputs], Arrays]] = {
    "portable": _run_portable,
    "fused": _run_fused,
    "eager": _run_eager,
}


def _all_results(case: DeltaCase, inputs: Inputs) -> dict[str, Arrays]:
    results = {"reference": _run_reference(case, inputs)}
    results |= {name: run(case, inputs) for name, run in IMPLEMENTATIONS.items()}
    fallback = _run_transformers(case, inputs)
    if fallback is not None:
        results["transformers"] = fallback
    return results


def _max_abs(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())


def _check_close(got: Arrays, want: Arrays, dtype: str, label: str) -> None:
    (output, state), (want_output, want_state) = got, want
    assert output.dtype == NP_DTYPES[dtype], f"{label}: output dtype {output.dtype}"
    assert state.dtype == np.float32, f"{label}: state dtype {state.dtype}"
    assert output.shape == want_output.shape and state.shape == want_state.shape, label
    atol, rtol = TOLERANCES[dtype]
    np.testing.assert_allclose(output.astype(np.float32), want_output, atol=atol, rtol=rtol, err_msg=label)
    atol, rtol = STATE_TOLERANCE
    np.testing.assert_allclose(state, want_state, atol=atol, rtol=rtol, err_msg=label)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_parity_with_reference(case: DeltaCase) -> None:
    results = _all_results(case, _inputs(case))
    want = results.pop("reference")
    assert len(results) == 3 + (case.scale is None)
    for name, got in results.items():
        _check_close(got, want, case.dtype, f"{name} vs reference [{case.id}]")


@pytest.mark.parametrize("case", [c for c in CASES if c.scale is None], ids=lambda case: case.id)
def test_eager_is_transformers_fallback(case: DeltaCase) -> None:
    inputs = _inputs(case)
    eager, fallback = _run_eager(case, inputs), _run_transformers(case, inputs)
    assert fallback is not None
    for got, want in zip(eager, fallback, strict=True):
        np.testing.assert_array_equal(got, want)


def _split_runs(
    run: Callable[[DeltaCase, Inputs], Arrays], case: DeltaCase, inputs: Inputs, split_at: list[int]
) -> Arrays:
    """Run ``inputs`` as consecutive pieces [start, end), handing the state from one piece to the next."""
    state, outputs = inputs["initial_state"], []
    for start, end in itertools.pairwise([0, *split_at, case.steps]):
        piece = {name: inputs[name][:, start:end] for name in ("query", "key", "value", "g", "beta")}
        output, state = run(DeltaCase(end - start, *_case_dims(case)), {**piece, "initial_state": state})
        outputs.append(output)
    return np.concatenate(outputs, axis=1), state


def _case_dims(case: DeltaCase) -> tuple[int, int, int, int, int]:
    return case.key_heads, case.value_heads, case.key_dim, case.value_dim, case.batch


@pytest.mark.parametrize("name", ["portable", "fused", "eager"])
def test_whole_sequence_equals_pieces_and_single_steps(name: str) -> None:
    case = DeltaCase(130, 2, 4, 16, 24, batch=2)
    inputs, run = _inputs(case, seed=3), IMPLEMENTATIONS[name]
    whole = run(case, inputs)
    _check_close(whole, _run_reference(case, inputs), "fp32", f"{name}: whole vs reference")
    _check_close(_split_runs(run, case, inputs, [100]), whole, "fp32", f"{name}: 100 + 30 vs whole")
    single_steps = _split_runs(run, case, inputs, list(range(1, 130)))
    _check_close(single_steps, whole, "fp32", f"{name}: 130 single steps vs whole")


def test_padding_steps_are_exact_no_ops() -> None:
    """Steps with beta = 0 and g = 0 (what the chunked body pads with) leave state and outputs alone."""
    case = DeltaCase(63)
    inputs = _inputs(case, seed=5)
    padded = {name: np.concatenate([x, np.zeros_like(x[:, :1])], axis=1) for name, x in inputs.items()}
    padded["initial_state"] = inputs["initial_state"]
    output, state = _run_portable(case, inputs)
    padded_output, padded_state = _run_portable(DeltaCase(64), padded)
    np.testing.assert_allclose(padded_output[:, :63], output, atol=1e-6, rtol=0)
    np.testing.assert_allclose(padded_state, state, atol=1e-6, rtol=0)


def test_key_heads_are_repeated_interleaved() -> None:
    """Value head j reads key head j // (Hv // Hk), not j % Hk: a tiled repeat must disagree."""
    case = DeltaCase(5, 2, 4, 16, 24)
    inputs = _inputs(case, seed=7)
    tiled = {name: np.tile(inputs[name], (1, 1, 2, 1)) for name in ("query", "key")}
    tiled = inputs | tiled
    as_if_tiled = _run_reference(DeltaCase(5, 4, 4, 16, 24), tiled)
    for name in ("portable", "fused"):
        output, _ = IMPLEMENTATIONS[name](case, inputs)
        assert _max_abs(output, as_if_tiled[0]) > 1e-2, name


def test_function_body_uses_only_standard_ops() -> None:
    function = gdr.function_proto()
    assert (function.domain, function.name) == (DOMAIN, gdr.OP_TYPE)
    assert list(function.attribute) == ["scale"]
    assert {(o.domain, o.version) for o in function.opset_import} == {("", ONNX_OPSET)}

    def op_types(nodes: list[onnx.NodeProto]) -> set[tuple[str, str]]:
        found = set()
        for node in nodes:
            found.add((node.domain, node.op_type))
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    found |= op_types(list(attribute.g.node))
        return found

    found = op_types(list(function.node))
    assert {domain for domain, _ in found} == {""}
    assert {"If", "Loop", "Scan"} <= {op for _, op in found}


def test_lowering_reads_heads_from_static_dims_and_keeps_keys_unrepeated() -> None:
    case = DeltaCase(3, 2, 4, 16, 24)
    model = ir.serde.deserialize_model(_lowered_model(case))
    (attention,) = [node for node in model.graph if node.op_type == "LinearAttention"]
    assert attention.domain == "com.microsoft"
    attributes = {name: attr.value for name, attr in attention.attributes.items()}
    assert attributes["q_num_heads"] == 2 and attributes["kv_num_heads"] == 4
    assert attributes["update_rule"] == "gated_delta"
    assert attributes["scale"] == pytest.approx(16**-0.5)
    with pytest.raises(ValueError, match="static"):
        _lowered_model(case, static_inputs=())


def test_lowering_falls_back_on_other_static_dims() -> None:
    """Value heads/dims symbolic on ``value`` itself: the state's static dims are enough."""
    case = DeltaCase(65, 2, 4, 16, 24, batch=2)
    lowered = _lowered_model(case, static_inputs=("key", "initial_state"))
    session = ort.InferenceSession(lowered.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = _inputs(case)
    _check_close(_run_session(session, inputs), _run_reference(case, inputs), "fp32", "fused, state dims")


class _TinyLayer(torch.nn.Module):
    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        g: torch.Tensor,
        beta: torch.Tensor,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        output, final_state = gdr.gated_delta_rule(query, key, value, g, beta, state)
        return output * 2.0, final_state


def test_export_emits_one_custom_node_with_dynamic_length() -> None:
    case = DeltaCase(5, 2, 4, 16, 8)
    example = _torch_inputs(_inputs(case))
    steps = torch.export.Dim("steps", min=1, max=4096)
    dynamic = ({1: steps}, {1: steps}, {1: steps}, {1: steps}, {1: steps}, None)
    program = torch.onnx.export(
        _TinyLayer().eval(),
        tuple(example),
        dynamo=True,
        opset_version=ONNX_OPSET,
        custom_translation_table={gdr.TORCH_OP: gdr.onnx_translation},
        dynamic_shapes=dynamic,
        input_names=list(INPUT_ORDER),
        verbose=False,
    )
    assert program is not None
    model = program.model_proto
    custom = [node for node in model.graph.node if node.domain == DOMAIN]
    assert [node.op_type for node in custom] == [gdr.OP_TYPE]
    assert {(o.domain, o.version) for o in model.opset_import} >= {(DOMAIN, DOMAIN_VERSION)}
    assert not model.graph.input[0].type.tensor_type.shape.dim[1].HasField("dim_value")
    model.functions.append(gdr.function_proto())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for steps_now in (1, 70):
        inputs = _inputs(DeltaCase(steps_now, 2, 4, 16, 8), seed=steps_now)
        output, state = session.run(None, inputs)
        want_output, want_state = _run_eager(case, inputs)
        np.testing.assert_allclose(output, 2.0 * want_output, atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(state, want_state, atol=1e-5, rtol=1e-5)


def parity_table() -> list[tuple[str, dict[str, tuple[float, float]]]]:
    """case id -> {pair: (max-abs of output, max-abs of final state)}; used by __main__."""
    rows = []
    for case in CASES:
        results = _all_results(case, _inputs(case))
        pairs = [(name, "reference") for name in results if name != "reference"]
        pairs += [("portable", "fused"), ("portable", "transformers"), ("eager", "transformers")]
        row = {
            f"{a}~{b}": (_max_abs(results[a][0], results[b][0]), _max_abs(results[a][1], results[b][1]))
            for a, b in pairs
            if a in results and b in results
        }
        rows.append((case.id, row))
    return rows


if __name__ == "__main__":
    for case_id, row in parity_table():
        cells = " ".join(f"{pair}={out:.1e}/{state:.1e}" for pair, (out, state) in row.items())
        print(f"{case_id}: {cells}")
