"""Queries per step of the vision graph's blocked attention: time and peak memory, natively.

    .venv/bin/python -m bench.vision_attention_block [--patches 4096,8192] [--blocks 64,128,256,512]

One VisionAttention node (export/vision/attention.py's function body) with the 0.8B tower's heads
(12 x 64), run in onnxruntime CPU (1 thread) in a fresh process per point, so the process's peak RSS is
that point's. `dense` is the former graph's form (scores [H, N, N]) for comparison. Writes
bench/results/vision_attention_block.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
HEADS, DIM = 12, 64


def _model(block: int | None):
    from onnx import TensorProto, helper

    from qwen35web.export.ops.domain import DOMAIN, DOMAIN_VERSION, ONNX_OPSET
    from qwen35web.export.vision.attention import OP_TYPE, function_proto

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [HEADS, "N", DIM]) for n in "qkv"]
    inputs.append(helper.make_tensor_value_info("segment", TensorProto.INT64, ["N"]))
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", HEADS * DIM])
    opsets = [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    if block is None:  # dense: softmax(q k^T) v over all patches at once
        nodes = [
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
            helper.make_node("MatMul", ["q", "kt"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
            helper.make_node("MatMul", ["probs", "v"], ["o"]),
            helper.make_node("Transpose", ["o"], ["ot"], perm=[1, 0, 2]),
            helper.make_node("Constant", [], ["shape"], value_ints=[0, HEADS * DIM]),
            helper.make_node("Reshape", ["ot", "shape"], ["out"]),
        ]
        functions = []
    else:
        nodes = [helper.make_node(OP_TYPE, ["q", "k", "v", "segment"], ["out"], domain=DOMAIN)]
        functions = [function_proto(block)]
    graph = helper.make_graph(nodes, "attention", inputs, [output])
    return helper.make_model(graph, opset_imports=opsets, functions=functions, ir_version=10)


def _point(patches: int, block: int | None) -> dict:
    """In this (fresh) process: build, run twice, report the second run's time and the peak RSS."""
    import resource
    import time

    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        _model(block).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((HEADS, patches, DIM), dtype=np.float32) * 0.1 for n in "qkv"}
    feed["segment"] = np.zeros(patches, dtype=np.int64)
    session.run(None, feed)
    started = time.perf_counter()
    session.run(None, feed)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"patches": patches, "block": block or "dense", "seconds": seconds, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", default="4096,8192")
    parser.add_argument("--blocks", default="dense,64,128,256,512")
    parser.add_argument("--point", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.point:
        patches, block = args.point.split(":")
        print(json.dumps(_point(int(patches), None if block == "dense" else int(block))))
        return
    rows = []
    for patches in [int(p) for p in args.patches.split(",")]:
        for block in args.blocks.split(","):
            command = [sys.executable, "-m", "bench.vision_attention_block", "--point", f"{patches}:{block}"]
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:
                rows.append(
                    {"patches": patches, "block": block, "error": done.stderr.strip().splitlines()[-1]}
                )
            else:
                rows.append(json.loads(done.stdout))
            print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vision_attention_block.json").write_text(
        json.dumps({"load_1min": load, "rows": rows}, indent=2)
    )
    lines = [
        "# Vision attention: queries per step (0.8B heads 12 x 64, one attention, onnxruntime CPU, 1 thread)",
        "",
        f"`python -m bench.vision_attention_block --patches {args.patches} --blocks {args.blocks}`; "
        f"1-minute load average at the end: {load:.1f} (2 shared cores). Peak RSS is the whole process's.",
        "",
        "| patches | block | s (2nd run) | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['patches']} | {row['block']} | failed: {row['error'][:80]} | |")
        else:
            lines.append(
                f"| {row['patches']} | {row['block']} | {row['seconds']:.2f} | {row['peak_rss_mb']:.0f} |"
            )
    (RESULTS / "vision_attention_block.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
