"""Does onnxruntime-web's WebGPU `GroupQueryAttention` give the right answer for several new tokens?

The minimal reproduction behind `FuseAttention(decode_only=True)`: one `com.microsoft::GroupQueryAttention`
node, fed the way our decoder feeds it (every row claims the full length: seqlens_k = P+T-1, an additive
`attention_bias` [B, 1, T, P+T] of zeros), run natively on onnxruntime's CPU provider (the reference) and in
headless Chromium on onnxruntime-web's WebGPU build, for T new tokens after P cached ones.

    python -m bench.gqa_webgpu [--out bench/results/gqa-webgpu.json]

WebGPU here is SwiftShader (a CPU adapter): this checks correctness, not speed.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from devtools.chromium import CHROMIUM, CHROMIUM_FLAGS
from devtools.webgpu_runner import ort_webgpu_site

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
ORT_DIST = ROOT / "node_modules" / "onnxruntime-web" / "dist"
HEADS, KV_HEADS, HEAD_DIM = 4, 2, 32
CASES = [(0, 1), (0, 8), (0, 31), (0, 32), (0, 33), (0, 64), (16, 1), (16, 32), (40, 48)]  # (past, new)

PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
import * as ort from "./ort/ort.webgpu.bundle.min.mjs";
ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
ort.env.logLevel = "error";
function floats(b64) { const s = atob(b64); const u = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return new Float32Array(u.buffer); }
window.run = async (modelB64, feeds) => {
  const bytes = Uint8Array.from(atob(modelB64), (c) => c.charCodeAt(0));
  const session = await ort.InferenceSession.create(bytes, {executionProviders: ["webgpu"]});
  const input = {};
  for (const [name, f] of Object.entries(feeds)) {
    input[name] = f.type === "int32" ? new ort.Tensor("int32", Int32Array.from(f.data), f.dims)
                                     : new ort.Tensor("float32", floats(f.data), f.dims);
  }
  const out = await session.run(input);
  const output = Array.from(await out.output.getData());
  await session.release();
  return output;
};
window.ready = true;
</script>"""


def gqa_model(with_bias: bool) -> bytes:
    """One GQA node: query/key/value [1, T, H*hd], past caches [1, Hkv, P, hd], zeros bias [1, 1, T, P+T]
    (with_bias; our decoder passes one) or none."""
    inputs = [
        helper.make_tensor_value_info("query", TensorProto.FLOAT, [1, "T", HEADS * HEAD_DIM]),
        helper.make_tensor_value_info("key", TensorProto.FLOAT, [1, "T", KV_HEADS * HEAD_DIM]),
        helper.make_tensor_value_info("value", TensorProto.FLOAT, [1, "T", KV_HEADS * HEAD_DIM]),
        helper.make_tensor_value_info("past_key", TensorProto.FLOAT, [1, KV_HEADS, "P", HEAD_DIM]),
        helper.make_tensor_value_info("past_value", TensorProto.FLOAT, [1, KV_HEADS, "P", HEAD_DIM]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
    ]
    if with_bias:
        inputs.append(helper.make_tensor_value_info("attention_bias", TensorProto.FLOAT, [1, 1, "T", "S"]))
    node = helper.make_node(
        "GroupQueryAttention",
        [i.name for i in inputs[:7]] + (["", "", "", "attention_bias"] if with_bias else []),
        ["output", "present_key", "present_value"],
        domain="com.microsoft",
        num_heads=HEADS,
        kv_num_heads=KV_HEADS,
    )
    outputs = [
        helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, "T", HEADS * HEAD_DIM]),
        helper.make_tensor_value_info("present_key", TensorProto.FLOAT, [1, KV_HEADS, "S", HEAD_DIM]),
        helper.make_tensor_value_info("present_value", TensorProto.FLOAT, [1, KV_HEADS, "S", HEAD_DIM]),
    ]
    graph = helper.make_graph([node], "gqa", inputs, outputs)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9).SerializeToString()


def feeds(past: int, new: int, seed: int, with_bias: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    total = past + new
    values = {
        "query": normal(1, new, HEADS * HEAD_DIM),
        "key": normal(1, new, KV_HEADS * HEAD_DIM),
        "value": normal(1, new, KV_HEADS * HEAD_DIM),
        "past_key": normal(1, KV_HEADS, past, HEAD_DIM),
        "past_value": normal(1, KV_HEADS, past, HEAD_DIM),
        "seqlens_k": np.array([total - 1], dtype=np.int32),
        "total_sequence_length": np.array(total, dtype=np.int32),
    }
    if with_bias:
        values["attention_bias"] = np.zeros((1, 1, new, total), dtype=np.float32)
    return values


def _to_js(values: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, array in values.items():
        if array.dtype == np.int32:
            out[name] = {"type": "int32", "data": array.reshape(-1).tolist(), "dims": list(array.shape)}
        else:
            data = base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()
            out[name] = {"type": "float32", "data": data, "dims": list(array.shape)}
    return out


def run(cases: list[tuple[int, int]]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    models = {bias: gqa_model(bias) for bias in (True, False)}
    version = json.loads((ORT_DIST.parent / "package.json").read_text())["version"]
    rows = []
    with ort_webgpu_site(PAGE) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(300_000)
            page.goto(f"{base}/index.html")
            page.wait_for_function("window.ready === true")
            for (past, new), bias in itertools.product(cases, (True, False)):
                native = ort.InferenceSession(models[bias], providers=["CPUExecutionProvider"])
                values = feeds(past, new, seed=past * 1000 + new, with_bias=bias)
                expected = native.run(["output"], values)[0].reshape(-1)
                encoded = base64.b64encode(models[bias]).decode()
                got = np.array(page.evaluate("([m, f]) => window.run(m, f)", [encoded, _to_js(values)]))
                error = float(np.max(np.abs(got - expected)))
                row = {"past": past, "new": new, "attention_bias": bias, "max_abs_vs_cpu": error}
                rows.append(row | {"ok": error <= 1e-3})
                log.info("past %d new %d bias %s: max |webgpu - cpu| = %.3g", past, new, bias, error)
        finally:
            browser.close()
    return {
        "onnxruntime_web": version,
        "onnxruntime": ort.__version__,
        "heads": [HEADS, KV_HEADS, HEAD_DIM],
        "cases": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gqa_webgpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gqa-webgpu.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = run(CASES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
