"""The delta rule on WebGPU: `GatedDeltaNet` (`--ops webgpu`) vs `LinearAttention` (`--ops fused`).

One ``GatedDeltaRule`` node at a real Qwen3.5 layer shape, lowered both ways, run in headless Chromium
on onnxruntime-web's WebGPU build: max |output - numpy reference| and |state - reference| per lowering,
and milliseconds per call for decode (T = 1) and prefill (T = 64, and 256 on a hardware adapter),
outputs read back each call.

    python -m bench.gated_delta_net_webgpu [--out bench/results/gated-delta-net-webgpu.json]

Timing needs a real GPU: here the adapter is SwiftShader (a CPU adapter, `isFallbackAdapter`), so the
report marks its timings `timing_meaningful: false`; only its parity figures count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir
from onnx import TensorProto, helper

from devtools.webgpu_runner import ORT_DIST, WebGpuPage
from qwen35web.export.ops import gated_delta_net, gated_delta_rule
from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, MS_DOMAIN, ONNX_OPSET

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
INPUT_ORDER = ("query", "key", "value", "g", "beta", "initial_state")
# (name, key heads, value heads, head dim): the linear-attention layers of the published sizes.
SHAPES = [("0.8B/2B", 16, 16, 128), ("4B/9B", 16, 32, 128)]
LOWERINGS: dict[str, Callable[[ir.Node], tuple[list[ir.Node], list[ir.Value]]]] = {
    "LinearAttention": gated_delta_rule.lower_to_ort,
    "GatedDeltaNet": gated_delta_net.lower_to_gated_delta_net,
}


def lowered_model(key_heads: int, value_heads: int, dim: int, lowering: str) -> bytes:
    """One GatedDeltaRule node, B and T symbolic, heads and dims static, lowered by `lowering`."""
    float_ = TensorProto.FLOAT
    shapes: dict[str, list[str | int]] = {
        "query": ["B", "T", key_heads, dim],
        "key": ["B", "T", key_heads, dim],
        "value": ["B", "T", value_heads, dim],
        "g": ["B", "T", value_heads],
        "beta": ["B", "T", value_heads],
        "initial_state": ["B", value_heads, dim, dim],
    }
    inputs = [helper.make_tensor_value_info(name, float_, shapes[name]) for name in INPUT_ORDER]
    outputs = [
        helper.make_tensor_value_info("output", float_, ["B", "T", value_heads, dim]),
        helper.make_tensor_value_info("final_state", float_, ["B", value_heads, dim, dim]),
    ]
    node = helper.make_node(
        gated_delta_rule.OP_TYPE, list(INPUT_ORDER), ["output", "final_state"], domain=DOMAIN, scale=dim**-0.5
    )
    opsets = [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    proto = helper.make_model(helper.make_graph([node], "delta_rule", inputs, outputs), opset_imports=opsets)
    proto.ir_version = 10
    model = ir.serde.deserialize_model(proto)
    custom = next(iter(model.graph))
    new_nodes, new_values = LOWERINGS[lowering](custom)
    ir.convenience.replace_nodes_and_values(
        model.graph, custom, [custom], new_nodes, list(custom.outputs), new_values
    )
    model.opset_imports.pop(DOMAIN, None)
    model.opset_imports[MS_DOMAIN] = 1
    return ir.serde.serialize_model(model).SerializeToString()


def feeds(key_heads: int, value_heads: int, dim: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    """Model-like inputs: unit q/k, decays g = -A softplus(.), beta in (0, 1), a random state."""
    rng = np.random.default_rng(seed)

    def unit(*shape: int) -> np.ndarray:
        x = rng.standard_normal(shape)
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    g = -rng.uniform(0.01, 16.0, value_heads) * np.logaddexp(
        0.0, rng.standard_normal((1, steps, value_heads)) - 3
    )
    return {
        "query": unit(1, steps, key_heads, dim),
        "key": unit(1, steps, key_heads, dim),
        "value": rng.standard_normal((1, steps, value_heads, dim)).astype(np.float32),
        "g": g.astype(np.float32),
        "beta": (1 / (1 + np.exp(-rng.standard_normal((1, steps, value_heads))))).astype(np.float32),
        "initial_state": rng.standard_normal((1, value_heads, dim, dim)).astype(np.float32),
    }


def _parity(gpu: WebGpuPage, name: str, values: dict[str, np.ndarray], dim: int) -> dict[str, float]:
    query, key, value, g, beta, state = (values[n] for n in INPUT_ORDER)
    want_output, want_state = gated_delta_rule.reference(query, key, value, g, beta, state, dim**-0.5)
    got = gpu.run(name, values)
    return {
        "output_max_abs": float(np.abs(got["output"] - want_output).max()),
        "state_max_abs": float(np.abs(got["final_state"] - want_state).max()),
    }


def run(prefill_sizes: list[int], repeats: int) -> dict[str, Any]:
    rows = []
    with WebGpuPage() as gpu:
        adapter = gpu.adapter()
        assert adapter is not None, "no WebGPU adapter (is Chromium started with --enable-unsafe-webgpu?)"
        meaningful = not adapter["isFallbackAdapter"]
        if not meaningful:  # SwiftShader: one timed run per size is all the time it is worth
            prefill_sizes, repeats = [size for size in prefill_sizes if size <= 64], 1
        for (shape, key_heads, value_heads, dim), lowering in (
            (shape, lowering) for shape in SHAPES for lowering in LOWERINGS
        ):
            name = f"{shape}-{lowering}"
            gpu.load(name, lowered_model(key_heads, value_heads, dim, lowering))
            for steps in [1, *prefill_sizes]:
                values = feeds(key_heads, value_heads, dim, steps, seed=steps)
                row = {
                    "shape": shape,
                    "heads": [key_heads, value_heads, dim],
                    "kernel": lowering,
                    "steps": steps,
                }
                row |= _parity(gpu, name, values, dim)
                samples = gpu.time(name, values, repeats)
                row |= {"median_ms": statistics.median(samples), "samples_ms": samples}
                rows.append(row)
                log.info(
                    "%s %s T=%d: %.1f ms, output max-abs %.2g",
                    shape,
                    lowering,
                    steps,
                    row["median_ms"],
                    row["output_max_abs"],
                )
            gpu.release(name)
    version = json.loads((ORT_DIST.parent / "package.json").read_text())["version"]
    return {
        "onnxruntime_web": version,
        "adapter": adapter,
        "timing_meaningful": meaningful,
        "note": None if meaningful else "SwiftShader (CPU) adapter: timings are not GPU timings; parity only",
        "load_average_1min": os.getloadavg()[0],
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gated_delta_net_webgpu", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "gated-delta-net-webgpu.json"
    )
    parser.add_argument("--prefill", type=int, nargs="*", default=[64, 256], help="prefill lengths to time")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per size (hardware adapter)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = run(args.prefill, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
