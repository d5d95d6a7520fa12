"""The native references bench.scale_page compares the WebGPU page with: qwen35web.runtime on CPython +
onnxruntime (CPU), on the bundle as exported and on a copy whose MatMulNBits compute in fp32.

Why the second: the q4 bundles ask for `accuracy_level` 4, and onnxruntime's CPU kernel then rounds each
block of activations to int8 before the product, while the WebGPU kernel (on SwiftShader, without its
int8 dot-product path) computes in fp32. On random weights the logits are nearly flat, so that rounding alone
can flip a greedy token (measured on the 4B: the second token). The copy shares the bundle's weight files
(hard links) and differs only in that attribute.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import onnx

FP32_ACCURACY = 1  # MatMulNBits accuracy_level: 1 = fp32 compute


def native_tokens(bundle: Path, prompt: str, max_new_tokens: int) -> list[int]:
    """The greedy tokens of qwen35web.runtime on CPython + onnxruntime for `bundle`."""
    from qwen35web.runtime.native.open_bundle import open_native
    from qwen35web.runtime.sampling import SamplingParams

    async def run() -> list[int]:
        runtime = await open_native(bundle, verify_hashes=False)  # the fp32 copy's graph is edited
        try:
            params = SamplingParams(greedy=True, max_new_tokens=max_new_tokens)
            result = await runtime.generate(runtime.prompt_ids(prompt), params)
            return list(result.tokens)
        finally:
            await runtime.close()

    return asyncio.run(run())


def fp32_compute_copy(bundle: Path, out: Path) -> int:
    """`bundle` as hard links in `out`, its MatMulNBits set to fp32 compute; how many nodes changed."""
    out.mkdir(parents=True, exist_ok=True)
    for path in bundle.iterdir():
        if path.is_file() and path.name != "model.onnx":
            os.link(path, out / path.name)
    model = onnx.load(str(bundle / "model.onnx"), load_external_data=False)
    changed = 0
    for node in model.graph.node:
        for attribute in node.attribute:
            if (
                node.op_type == "MatMulNBits"
                and attribute.name == "accuracy_level"
                and attribute.i != FP32_ACCURACY
            ):
                attribute.i = FP32_ACCURACY
                changed += 1
    onnx.save(model, str(out / "model.onnx"))  # the weights stay in the linked external-data files
    return changed


def native_references(bundle: Path, prompt: str, max_new_tokens: int) -> dict[str, list[int]]:
    """{"native_tokens": as exported, "native_fp32_compute_tokens": with MatMulNBits in fp32} (the
    second only when the bundle has MatMulNBits computing otherwise)."""
    found = {"native_tokens": native_tokens(bundle, prompt, max_new_tokens)}
    with tempfile.TemporaryDirectory(prefix="fp32-compute-", dir=bundle.parent) as scratch:
        copy = Path(scratch) / bundle.name
        if fp32_compute_copy(bundle, copy):
            found["native_fp32_compute_tokens"] = native_tokens(copy, prompt, max_new_tokens)
    return found
