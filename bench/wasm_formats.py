"""Which weight format makes a matrix product cheapest in onnxruntime-web's wasm build?

Decode is a chain of [1, K] x [K, N] products over every weight, so the cost per weight of each
candidate format, in the browser, decides the wasm export's format. Each candidate is one graph of
`count` independent products of the same input with different random weights (big enough to stream
from memory rather than sit in the last-level cache), timed at M = 1 (decode) and M = 128 (prefill)
rows, one wasm thread, one graph at a time (released before the next, to keep the wasm heap free).

    python -m bench.wasm_formats [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bench.browser import REPO, build_harness_site, harness_page

log = logging.getLogger(__name__)

K = 1024  # the 0.8B hidden size
N = 32768
ROWS = (1, 128)
REPEATS = 5


@dataclass(frozen=True)
class Candidate:
    name: str
    count: int  # products per graph; count * K * N weights in all
    build: Callable[[np.random.Generator, int], tuple[list[onnx.NodeProto], list[onnx.TensorProto]]]


def _fp32(rng: np.random.Generator, index: int):
    weight = rng.standard_normal((K, N), dtype=np.float32) * 0.02
    init = numpy_helper.from_array(weight, f"w{index}")
    return [helper.make_node("MatMul", ["x", init.name], [f"y{index}"])], [init]


def _fp16(rng: np.random.Generator, index: int):
    weight = (rng.standard_normal((K, N), dtype=np.float32) * 0.02).astype(np.float16)
    init = numpy_helper.from_array(weight, f"w{index}")
    nodes = [
        helper.make_node("MatMul", ["x16", init.name], [f"h{index}"]),
        helper.make_node("Cast", [f"h{index}"], [f"y{index}"], to=TensorProto.FLOAT),
    ]
    return nodes, [init]


def _int8_dynamic(rng: np.random.Generator, index: int):
    """com.microsoft::DynamicQuantizeMatMul: int8 weights, one scale per output column."""
    weight = rng.integers(-127, 128, size=(K, N), dtype=np.int8)
    inits = [
        numpy_helper.from_array(weight, f"w{index}"),
        numpy_helper.from_array(np.full(N, 0.02 / 127, np.float32), f"s{index}"),
    ]
    node = helper.make_node(
        "DynamicQuantizeMatMul", ["x", f"w{index}", f"s{index}"], [f"y{index}"], domain="com.microsoft"
    )
    return [node], inits


def _nbits(bits: int, block: int, accuracy: int):
    def build(rng: np.random.Generator, index: int):
        blob = block * bits // 8
        packed = rng.integers(0, 256, size=(N, K // block, blob), dtype=np.uint8)
        inits = [
            numpy_helper.from_array(packed, f"w{index}"),
            numpy_helper.from_array(np.full((N, K // block), 0.01, np.float32), f"s{index}"),
        ]
        node = helper.make_node(
            "MatMulNBits",
            ["x", f"w{index}", f"s{index}"],
            [f"y{index}"],
            domain="com.microsoft",
            K=K,
            N=N,
            bits=bits,
            block_size=block,
            accuracy_level=accuracy,
        )
        return [node], inits

    return build


CANDIDATES = [
    Candidate("fp32 MatMul", 6, _fp32),
    Candidate("fp16 MatMul", 6, _fp16),
    Candidate("int8 DynamicQuantizeMatMul", 12, _int8_dynamic),
    Candidate("int8 MatMulNBits b32 acc4", 12, _nbits(8, 32, 4)),
    Candidate("int8 MatMulNBits b32 acc0", 12, _nbits(8, 32, 0)),
    Candidate("int4 MatMulNBits b32 acc4", 12, _nbits(4, 32, 4)),
]


def _write_graph(path: Path, candidate: Candidate) -> None:
    rng = np.random.default_rng(0)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    if candidate.build is _fp16:
        nodes.append(helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16))
    for index in range(candidate.count):
        more_nodes, more_inits = candidate.build(rng, index)
        nodes += more_nodes
        inits += more_inits
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", K])
    outputs = [
        helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["m", N]) for i in range(candidate.count)
    ]
    graph = helper.make_graph(nodes, "formats", [x], outputs, initializer=inits)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(
        model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx.data"
    )


def _time_candidate(page, base: str, slug: str, candidate: Candidate) -> dict:
    url = f"{base}/models/{slug}/model.onnx"
    spec = {"position_rank": 2, "states": [], "logits": "y0"}
    load_ms = page.evaluate("(a) => window.bench.load(...a)", [slug, url, ["model.onnx.data"], spec, 1])
    result: dict = {"load_ms": load_ms, "weights": candidate.count * K * N}
    for rows in ROWS:
        shapes = {"x": [rows, K]}
        page.evaluate("(a) => window.bench.timeInputs(...a)", [slug, shapes, 1])  # warm-up
        samples = [
            page.evaluate("(a) => window.bench.timeInputs(...a)", [slug, shapes, 1]) for _ in range(REPEATS)
        ]
        median = statistics.median(samples)
        result[f"m{rows}"] = {"median_ms": median, "ns_per_weight": median * 1e6 / result["weights"]}
        log.info(
            "%s M=%d: %.1f ms (%.3f ns/weight)",
            candidate.name,
            rows,
            median,
            result[f"m{rows}"]["ns_per_weight"],
        )
    page.evaluate("(name) => window.bench.release(name)", slug)
    return result


def run(work: Path) -> dict:
    site = work / "site"
    build_harness_site(site, [])  # the harness alone; each candidate's graph is written in turn
    results: dict = {}
    with harness_page(site) as (page, base):
        for index, candidate in enumerate(CANDIDATES):
            slug = f"c{index}"
            _write_graph(site / "models" / slug / "model.onnx", candidate)
            try:
                results[candidate.name] = _time_candidate(page, base, slug, candidate)
            except Exception as error:  # a format the wasm build lacks is a result, not a crash
                log.warning("%s failed: %s", candidate.name, str(error).splitlines()[0])
                results[candidate.name] = {"error": str(error).splitlines()[0]}
            shutil.rmtree(site / "models" / slug)
    return results


def _markdown(results: dict) -> str:
    lines = [
        "# Weight formats in onnxruntime-web wasm (1 thread, headless Chromium)",
        "",
        f"Independent [M, {K}] x [{K}, {N}] products of one input (random weights).",
        "",
        "| format | weights | M=1 (ms) | M=1 ns/weight | M=128 (ms) | M=128 ns/weight |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | – | failed: {result['error'][:80]} | | | |")
            continue
        cells = [f"{result['weights'] / 1e6:.0f} M"]
        for rows in ROWS:
            cell = result[f"m{rows}"]
            cells += [f"{cell['median_ms']:.1f}", f"{cell['ns_per_weight']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "fp16 weights cost what fp32 ones do: the CPU kernels are fp32, onnxruntime casts the fp16",
        "initializers at load, so they take fp32's memory in the wasm heap too. MatMulNBits (int4 or",
        "int8) dequantizes in scalar code; DynamicQuantizeMatMul runs the SIMD integer GEMM.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "bench" / "wasm-formats")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = run(args.work)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "wasm-formats.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "wasm-formats.md").write_text(_markdown(results))
    print(_markdown(results))


if __name__ == "__main__":
    main()
