"""The benches by name: the one table `python -m bench NAME` runs from and `python -m bench --list` prints.

Each name is also its module (`bench.NAME`), so `python -m bench.NAME [args]` runs the same bench. Modules of
bench/ not listed here are libraries the benches share (`page_harness`, `artifacts`, `browser`, the reports).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bench:
    name: str
    summary: str

    @property
    def module(self) -> str:
        return f"bench.{self.name}"


BENCHES: dict[str, Bench] = {
    bench.name: bench
    for bench in (
        Bench("peers", "`make bench`: our exports vs onnxruntime-genai's, native onnxruntime and wasm"),
        Bench("native", "worker of `peers`: native onnxruntime/torch timings of given graphs"),
        Bench("fidelity", "`make fidelity`: perplexity and top-1 agreement of the exported demo model"),
        Bench("threads", "wasm threads in the real page: prefill and decode, 1 vs 2 threads"),
        Bench("ready", "time to ready in the real page, cold and warm"),
        Bench("scale_page", "every size in the page: wasm timings, WebGPU checked against native"),
        Bench("conversation", "time to first token per turn, with and without state reuse (native)"),
        Bench("conversation_page", "the scripted conversation in the real page (wasm, 0.8B q8)"),
        Bench("conversation_page_person", "a simulated person in the page: prefill ahead and typing off/on"),
        Bench("conversation_person", "a simulated person natively: prefill ahead and typing off/on"),
        Bench("constrained_sampling", "cost per token of constrained sampling at the real vocabulary"),
        Bench("constrained_page", "constrained sampling in the real page at the real vocabulary"),
        Bench("penalties", "presence/frequency penalties: how repetitive generated text is"),
        Bench("replica_stop", "where replies stop on the published-repository replicas"),
        Bench("runtime_overhead", "Python overhead of the native runtime per decode step"),
        Bench("export_scale", "export a real Qwen3.5 shape: time, peak RSS and parity"),
        Bench("gated_delta_rule_speed", "speed of the GatedDeltaRule implementations on onnxruntime CPU"),
        Bench("gqa_webgpu", "onnxruntime-web WebGPU GroupQueryAttention correctness"),
        Bench(
            "gated_delta_net_webgpu",
            "the delta rule on WebGPU: GatedDeltaNet vs LinearAttention, parity and ms (real GPU only)",
        ),
        Bench("wasm_formats", "which weight format makes a matmul cheapest in onnxruntime-web wasm"),
        Bench("vision", "the vision tower at real shapes: sizes, time per image, precision"),
        Bench("vision_attention_block", "queries per step of the vision blocked attention: time and memory"),
        Bench("vision_chromium", "the vision tower in headless Chromium (wasm): time per image"),
        Bench("vision_table", "images of three sizes through the 0.8B tower at the default caps"),
    )
}
