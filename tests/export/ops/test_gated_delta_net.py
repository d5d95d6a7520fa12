"""The `--ops webgpu` lowering of the delta rule: ``com.microsoft::GatedDeltaNet`` on WebGPU.

No CPU build of onnxruntime has the kernel, so parity runs in headless Chromium (WebGPU = SwiftShader
here, fp32 only: it has no `shader-f16`), against the numpy reference (the spec) for one node, and
against the `--ops fused` (LinearAttention) bundle on onnxruntime's CPU provider for the whole tiny
model, with states fed back across calls. Run this file as a script to print the parity table.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

from devtools.webgpu_runner import WebGpuPage
from qwen35web.export.errors import BadInputError
from qwen35web.export.ops import gated_delta_net as gdn
from qwen35web.export.ort_runner import GraphRunner
from qwen35web.export.pipeline import ExportOptions, run_export
from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.web.build import BuildError, SiteSpec, build_site
from tests.export.ops.test_gated_delta_rule import (
    DeltaCase,
    Inputs,
    _inputs,
    _run_reference,
    _single_node_model,
)

# |got - want| <= atol + rtol * |want| against the float32 reference on the same inputs: the kernel
# sums in another order than numpy (subgroup / tree reductions over Dk), so at Dk = 128 it needs a
# little more room than the CPU kernels' 1e-5.
WEBGPU_TOLERANCES = {"fp32": (2e-5, 1e-5), "fp16": (4e-3, 2e-3)}
STATE_TOLERANCE = (2e-5, 1e-5)
# The whole tiny model: WebGPU (GatedDeltaNet) vs onnxruntime CPU (LinearAttention), same weights.
MODEL_LOGITS_TOLERANCE = 1e-4
# Ragged T around the sizes where kernels change routes (32, 64), decode (1), and longer prefills.
RAGGED_STEPS = (1, 7, 31, 32, 33, 64, 65, 130)
F16_MISSING = "requires f16 but the device does not support it"


def _webgpu_cases() -> list[DeltaCase]:
    # Hv = 2 Hk and Dk != Dv: a wrong head grouping or an untransposed state cannot pass.
    cases = [DeltaCase(steps, 2, 4, 16, 24, batch=2) for steps in RAGGED_STEPS]
    cases += [
        DeltaCase(33, state="zero"),
        DeltaCase(65, 2, 4, 16, 24, batch=2, decay="strong"),
        DeltaCase(70, 2, 4, 16, 24, scale=0.1),
        DeltaCase(1, 16, 16, 128, 128),  # the 0.8B/2B layer shape
        DeltaCase(1, 16, 32, 128, 128),  # the 4B/9B layer shape
        DeltaCase(65, 16, 32, 128, 128),
    ]
    return cases


CASES = _webgpu_cases()


def lowered_model(dtype: str, scale: float) -> onnx.ModelProto:
    """One GatedDeltaRule node (every dim symbolic) rewritten by the `--ops webgpu` lowering."""
    model = ir.serde.deserialize_model(_single_node_model(dtype, scale))
    node = next(iter(model.graph))
    new_nodes, new_values = gdn.lower_to_gated_delta_net(node)
    ir.convenience.replace_nodes_and_values(
        model.graph, node, [node], new_nodes, list(node.outputs), new_values
    )
    model.opset_imports["com.microsoft"] = 1
    return ir.serde.serialize_model(model)


@dataclass
class _Kernels:
    """Sessions on one page, one per (dtype, scale): the kernel does not depend on T, B or heads."""

    gpu: WebGpuPage
    loaded: set[str] = field(default_factory=set)

    def run(self, case: DeltaCase, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        name = f"{case.dtype}-{case.query_scale!r}"
        if name not in self.loaded:
            self.gpu.load(name, lowered_model(case.dtype, case.query_scale).SerializeToString())
            self.loaded.add(name)
        outputs = self.gpu.run(name, inputs)
        return outputs["output"], outputs["final_state"]


def _reference(case: DeltaCase, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
    return _run_reference(case, {name: x.astype(np.float32) for name, x in inputs.items()})


def _max_abs(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())


def _check(
    got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray], dtype: str, label: str
) -> None:
    (output, state), (want_output, want_state) = got, want
    assert output.shape == want_output.shape and state.shape == want_state.shape, label
    assert state.dtype == np.float32, label
    atol, rtol = WEBGPU_TOLERANCES[dtype]
    np.testing.assert_allclose(output.astype(np.float32), want_output, atol=atol, rtol=rtol, err_msg=label)
    atol, rtol = STATE_TOLERANCE
    np.testing.assert_allclose(state, want_state, atol=atol, rtol=rtol, err_msg=label)


# ---------------------------------------------------------------------------------------------
# The lowering itself (no browser)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_lowering_is_transpose_kernel_transpose(dtype: str) -> None:
    model = lowered_model(dtype, 0.125)
    nodes = list(model.graph.node)
    kinds = [node.op_type for node in nodes]
    # decay and beta are float32-only inputs: an fp16 graph casts beta (g is float32 already).
    assert kinds == (["Cast"] if dtype == "fp16" else []) + ["Transpose", gdn.KERNEL, "Transpose"]
    kernel = next(node for node in nodes if node.op_type == gdn.KERNEL)
    assert kernel.domain == "com.microsoft"
    assert list(kernel.input[:4]) == ["query", "key", "value", ""]  # q/k/v as they are, no cu_seqlens
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in kernel.attribute}
    assert attributes == {"update_rule": b"gated_delta", "scale": pytest.approx(0.125)}
    for node in nodes:
        if node.op_type == "Transpose":
            assert list(node.attribute[0].ints) == [0, 1, 3, 2]
    inferred = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(inferred)


def test_onnxruntime_cpu_has_no_gated_delta_net_kernel() -> None:
    """Why `--ops webgpu` is its own graph: if this starts passing, the CPU/wasm graph could use it too."""
    with pytest.raises(Exception, match="GatedDeltaNet"):
        ort.InferenceSession(
            lowered_model("fp32", 0.25).SerializeToString(), providers=["CPUExecutionProvider"]
        )


def test_webgpu_export_refuses_validate(tmp_path) -> None:
    options = ExportOptions(tmp_path / "nowhere", tmp_path / "out", ops="webgpu", validate=True)
    with pytest.raises(BadInputError, match="no GatedDeltaNet kernel"):
        run_export(options)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# On WebGPU (headless Chromium)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webgpu(browser) -> Iterator[WebGpuPage]:
    with WebGpuPage(browser) as page:
        yield page


@pytest.fixture(scope="module")
def kernels(webgpu: WebGpuPage) -> _Kernels:
    return _Kernels(webgpu)


@pytest.mark.browser
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_webgpu_parity_with_reference(kernels: _Kernels, case: DeltaCase) -> None:
    inputs = _inputs(case)
    _check(
        kernels.run(case, inputs), _reference(case, inputs), case.dtype, f"webgpu vs reference [{case.id}]"
    )


def _in_pieces(
    kernels: _Kernels, case: DeltaCase, inputs: Inputs, cuts: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Run `inputs` as consecutive calls [start, end), each fed the state the previous one returned."""
    state, outputs = inputs["initial_state"], []
    for start, end in itertools.pairwise([0, *cuts, case.steps]):
        piece = {name: x[:, start:end] for name, x in inputs.items() if name != "initial_state"}
        output, state = kernels.run(case, {**piece, "initial_state": state})
        outputs.append(output)
    return np.concatenate(outputs, axis=1), state


@pytest.mark.browser
def test_webgpu_state_hand_off_across_calls(kernels: _Kernels) -> None:
    """Prefill chunks of 64, 1, 32 and 33 tokens, then 10 decode steps, equal one call and the spec."""
    case = DeltaCase(140, 2, 4, 16, 24, batch=2)
    inputs = _inputs(case, seed=3)
    want = _reference(case, inputs)
    _check(kernels.run(case, inputs), want, "fp32", "one call vs reference")
    cuts = [64, 65, 97, 130, *range(131, 140)]
    _check(_in_pieces(kernels, case, inputs, cuts), want, "fp32", "chunks + decode steps vs reference")


@pytest.mark.browser
def test_webgpu_fp16(webgpu: WebGpuPage, kernels: _Kernels) -> None:
    """fp16 q/k/v/beta with a float32 state: parity where the adapter has `shader-f16`; where it has
    not (SwiftShader), onnxruntime-web refuses the graph with its f16 message (nothing silently wrong)."""
    adapter = webgpu.adapter()
    assert adapter is not None
    case = DeltaCase(65, 2, 4, 16, 24, batch=2, dtype="fp16")
    inputs = _inputs(case)
    if "shader-f16" in adapter["features"]:
        _check(kernels.run(case, inputs), _reference(case, inputs), "fp16", "fp16 webgpu vs reference")
        return
    with pytest.raises(Exception, match=F16_MISSING):
        kernels.run(case, inputs)


MODEL_CALLS = (33, 64, 1, 1, 1, 7, 1)  # prefill chunks (>= 32, >= 64, ragged) and decode steps


def _model_bytes(bundle) -> bytes:
    return onnx.load(str(bundle / "model.onnx")).SerializeToString()  # weights inline


def model_parity(webgpu: WebGpuPage, webgpu_bundle, fused_bundle, batch: int = 2) -> list[float]:
    """Max |logits| difference per call, WebGPU (GatedDeltaNet) vs CPU (LinearAttention), states fed back."""
    cpu = GraphRunner(fused_bundle / "model.onnx")
    webgpu.load("model", _model_bytes(webgpu_bundle))
    rng = np.random.default_rng(0)
    cpu_states, gpu_states = cpu.zero_states(batch), cpu.zero_states(batch)
    past, differences = 0, []
    for count in MODEL_CALLS:
        ids = rng.integers(0, 500, (batch, count))
        want, cpu_states = cpu.step(ids, past, cpu_states)
        got = webgpu.run("model", cpu.feeds(ids, past, gpu_states))
        gpu_states = [got[state.present] for state in cpu.states]
        differences.append(_max_abs(got["logits"], want))
        past += count
    webgpu.release("model")
    return differences


def test_webgpu_bundle_is_refused_where_it_cannot_run(export_bundle, tmp_path) -> None:
    """Natively (no CPU kernel) and as a site's only graph (the page on wasm would have none)."""
    webgpu_bundle, fused_bundle = export_bundle("text", "webgpu"), export_bundle("text", "fused")
    manifest = json.loads((webgpu_bundle / "manifest.json").read_text())
    assert manifest["ops"] == "webgpu"
    assert manifest["io"] == json.loads((fused_bundle / "manifest.json").read_text())["io"]  # same graph I/O
    # In a thread of its own: the module's Playwright page keeps an event loop on this one.
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        pytest.raises(BundleError, match=r"--ops webgpu: .* GatedDeltaNet"),
    ):
        pool.submit(asyncio.run, open_native(webgpu_bundle)).result()
    with pytest.raises(BuildError, match=r"runs only on WebGPU .* --wasm-bundle tiny=DIR"):
        build_site(SiteSpec(tmp_path / "site", [("tiny", webgpu_bundle)]))
    with pytest.raises(BuildError, match="which wasm cannot run"):
        build_site(
            SiteSpec(tmp_path / "site", [("tiny", fused_bundle)], wasm_bundles={"tiny": webgpu_bundle})
        )
    assert not (tmp_path / "site").exists()


@pytest.mark.browser
def test_webgpu_bundle_matches_fused_bundle(webgpu: WebGpuPage, export_bundle) -> None:
    differences = model_parity(webgpu, export_bundle("text", "webgpu"), export_bundle("text", "fused"))
    assert max(differences) <= MODEL_LOGITS_TOLERANCE, dict(zip(MODEL_CALLS, differences, strict=True))


def parity_table() -> list[tuple[str, float, float]]:
    """(case id, max-abs of output, max-abs of final state) for every single-node case; used by __main__."""
    rows = []
    with WebGpuPage() as page:
        runner = _Kernels(page)
        for case in CASES:
            inputs = _inputs(case)
            (output, state), (want_output, want_state) = runner.run(case, inputs), _reference(case, inputs)
            rows.append((case.id, _max_abs(output, want_output), _max_abs(state, want_state)))
    return rows


if __name__ == "__main__":
    for case_id, output_error, state_error in parity_table():
        print(f"{case_id}: output {output_error:.1e}, state {state_error:.1e}")
