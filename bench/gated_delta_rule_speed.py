"""Speed of the GatedDeltaRule implementations on onnxruntime CPU.

Compares the portable chunked function body, a naive per-token ``Scan`` body (baseline, kept
here and not in the library) and the fused ``com.microsoft::LinearAttention`` lowering.

    .venv/bin/python -m bench.gated_delta_rule_speed --steps 128 --heads 16 --dim 128 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import TensorProto, helper

from qwen35web.export.ops import gated_delta_rule as gdr
from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, MS_DOMAIN, ONNX_OPSET

INPUT_ORDER = ("query", "key", "value", "g", "beta", "initial_state")
_FLOAT = TensorProto.FLOAT


def _io(heads: int, dim: int) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    """Graph inputs/outputs with symbolic B and T, static heads and dims."""
    head_shape: list[str | int] = ["B", "T", heads, dim]
    shapes: dict[str, list[str | int]] = {
        "g": ["B", "T", heads],
        "beta": ["B", "T", heads],
        "initial_state": ["B", heads, dim, dim],
    }
    inputs = [
        helper.make_tensor_value_info(name, _FLOAT, shapes.get(name, head_shape)) for name in INPUT_ORDER
    ]
    outputs = [
        helper.make_tensor_value_info("output", _FLOAT, head_shape),
        helper.make_tensor_value_info("final_state", _FLOAT, ["B", heads, dim, dim]),
    ]
    return inputs, outputs


def _model(nodes: Sequence[onnx.NodeProto], heads: int, dim: int, **kwargs: Any) -> onnx.ModelProto:
    inputs, outputs = _io(heads, dim)
    opsets = [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
    graph = helper.make_graph(nodes, "gated_delta_rule_bench", inputs, outputs)
    return helper.make_model(graph, opset_imports=opsets, ir_version=10, **kwargs)


def custom_node_model(heads: int, dim: int) -> onnx.ModelProto:
    node = helper.make_node(
        gdr.OP_TYPE, list(INPUT_ORDER), ["output", "final_state"], domain=DOMAIN, scale=dim**-0.5
    )
    return _model([node], heads, dim)


def portable_model(heads: int, dim: int) -> onnx.ModelProto:
    return _model(custom_node_model(heads, dim).graph.node, heads, dim, functions=[gdr.function_proto()])


def fused_model(heads: int, dim: int) -> onnx.ModelProto:
    model = ir.serde.deserialize_model(custom_node_model(heads, dim))
    node = next(iter(model.graph))
    new_nodes, new_values = gdr.lower_to_ort(node)
    ir.convenience.replace_nodes_and_values(
        model.graph, node, [node], new_nodes, list(node.outputs), new_values
    )
    return ir.serde.serialize_model(model)


def _token_step_body() -> onnx.GraphProto:
    """Scan body for one token: state [B, H, Dk, Dv]; q, k [B, H, Dk]; v [B, H, Dv]; g, beta [B, H]."""
    nodes: list[onnx.NodeProto] = []

    def op(op_type: str, *inputs: str, **attributes: Any) -> str:
        output = f"t{len(nodes)}"
        nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    axis2, axes23 = op("Constant", value_ints=[2]), op("Constant", value_ints=[2, 3])
    state = op("Mul", "state", op("Unsqueeze", op("Exp", "g_t"), axes23))
    predicted = op("MatMul", op("Unsqueeze", "k_t", axis2), state)  # [B, H, 1, Dv]
    delta = op("Mul", op("Sub", op("Unsqueeze", "v_t", axis2), predicted), op("Unsqueeze", "beta_t", axes23))
    k_column = op("Unsqueeze", "k_t", op("Constant", value_ints=[3]))  # [B, H, Dk, 1]
    new_state = op("Add", state, op("MatMul", k_column, delta))
    out = op("Squeeze", op("MatMul", op("Unsqueeze", "q_t", axis2), new_state), axis2)  # [B, H, Dv]
    ranks = {"state": 4, "q_t": 3, "k_t": 3, "v_t": 3, "g_t": 2, "beta_t": 2}
    inputs = [helper.make_tensor_value_info(name, _FLOAT, [None] * rank) for name, rank in ranks.items()]
    outputs = [helper.make_tensor_value_info(new_state, _FLOAT, [None] * 4)]
    outputs.append(helper.make_tensor_value_info(out, _FLOAT, [None] * 3))
    return helper.make_graph(nodes, "token_step", inputs, outputs)


def per_token_scan_model(heads: int, dim: int) -> onnx.ModelProto:
    """Baseline: a Scan over T of the recurrent step (Hk == Hv, so no head repeat)."""
    nodes = [
        helper.make_node("Constant", [], ["scale"], value_float=dim**-0.5),
        helper.make_node("Mul", ["query", "scale"], ["scaled_query"]),
        helper.make_node(
            "Scan",
            ["initial_state", "scaled_query", "key", "value", "g", "beta"],
            ["final_state", "output"],
            body=_token_step_body(),
            num_scan_inputs=5,
            scan_input_axes=[1] * 5,
            scan_output_axes=[1],
        ),
    ]
    return _model(nodes, heads, dim)


def _inputs(steps: int, heads: int, dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def unit(shape: tuple[int, ...]) -> np.ndarray:
        x = rng.standard_normal(shape)
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    return {
        "query": unit((1, steps, heads, dim)),
        "key": unit((1, steps, heads, dim)),
        "value": rng.standard_normal((1, steps, heads, dim)).astype(np.float32),
        "g": -rng.uniform(0.01, 1.0, (1, steps, heads)).astype(np.float32),
        "beta": rng.uniform(0.1, 0.9, (1, steps, heads)).astype(np.float32),
        "initial_state": rng.standard_normal((1, heads, dim, dim)).astype(np.float32),
    }


def _time_ms(
    session: ort.InferenceSession, feeds: dict[str, np.ndarray], repeats: int
) -> tuple[float, float]:
    session.run(None, feeds)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--dim", type=int, default=128, help="Dk = Dv")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    feeds = _inputs(args.steps, args.heads, args.dim)
    builders = {"chunked": portable_model, "per_token_scan": per_token_scan_model, "fused": fused_model}
    results, timings = {}, {}
    for name, build in builders.items():
        model = build(args.heads, args.dim)
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        results[name] = session.run(None, feeds)
        timings[name] = _time_ms(session, feeds, args.repeats)
    print(f"T={args.steps} H={args.heads} Dk=Dv={args.dim} threads={args.threads}")
    for name, (median, best) in timings.items():
        spread = max(
            float(np.abs(a - b).max()) for a, b in zip(results[name], results["chunked"], strict=True)
        )
        print(f"{name:>15}: median {median:8.2f} ms  min {best:8.2f} ms  max-abs vs chunked {spread:.1e}")
    ratio = timings["per_token_scan"][0] / timings["chunked"][0]
    print(f"per-token Scan / chunked (median): {ratio:.2f}x")
    print(f"chunked / fused (median): {timings['chunked'][0] / timings['fused'][0]:.2f}x")


if __name__ == "__main__":
    main()
