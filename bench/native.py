"""Native timing worker: onnxruntime CPU sessions (any I/O convention) and HF eager torch.

Run as a subprocess per (model, thread count) so thread settings and peak RSS stay per run:
  python -m bench.native --threads 2 --variant NAME=ENGINE=PATH ... --out result.json
All variants of one call are loaded together and timed round-robin (A B C A B C ...); each
sample is the mean of enough calls to last MIN_SAMPLE_MS; decode runs on a synthesized state, since
decode cost depends only on shapes (past length), not on the values in the caches.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.graph_spec import GraphSpec, describe

log = logging.getLogger(__name__)

Measure = Callable[[], None]
# Each sample lasts at least this long (several calls for tiny graphs) so timer noise stays small.
MIN_SAMPLE_MS = 40.0
MAX_CALLS_PER_SAMPLE = 50


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class OrtTarget:
    """One onnxruntime session plus feeds built from its GraphSpec."""

    def __init__(self, model_path: Path, threads: int, vocab: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        started = time.perf_counter()
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.load_s = time.perf_counter() - started
        self.spec: GraphSpec = describe(model_path)
        self.vocab = vocab
        self.outputs = ["logits"] + [s.present for s in self.spec.states]

    def _feeds(self, seq: int, past: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        ids = rng.integers(0, self.vocab, size=(1, seq), dtype=np.int64)
        positions = np.arange(past, past + seq, dtype=np.int64)[None]  # [1, T]
        if self.spec.position_rank == 3:
            positions = np.broadcast_to(positions, (3, 1, seq))  # M-RoPE: [3, B, T], text-only
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones((1, past + seq), dtype=np.int64),
            "position_ids": np.ascontiguousarray(positions),
        }
        for state in self.spec.states:
            dims = [1 if d == "batch" else past if d == "past" else int(d) for d in state.dims]
            # Small random caches: zeros would be as valid, but random avoids any sparse fast path.
            feeds[state.past] = (rng.standard_normal(dims) * 0.1).astype(state.dtype)
        return feeds

    def prefill(self, seq: int) -> Measure:
        feeds = self._feeds(seq, 0)
        return lambda: self.session.run(self.outputs, feeds)

    def decode(self, past: int) -> Measure:
        feeds = self._feeds(1, past)
        return lambda: self.session.run(self.outputs, feeds)


class TorchTarget:
    """HF eager transformers (torch fallback kernels) on the text-layout checkpoint."""

    def __init__(self, checkpoint: Path, threads: int, vocab: int):
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        started = time.perf_counter()
        self.model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
        self.load_s = time.perf_counter() - started
        self.torch = torch
        self.vocab = vocab

    def _ids(self, seq: int):
        rng = np.random.default_rng(0)
        return self.torch.from_numpy(rng.integers(0, self.vocab, size=(1, seq), dtype=np.int64))

    def prefill(self, seq: int) -> Measure:
        ids = self._ids(seq)

        def run() -> None:
            with self.torch.inference_mode():
                self.model(input_ids=ids, use_cache=True)

        return run

    def decode(self, past: int) -> Measure:
        with self.torch.inference_mode():
            cache = self.model(input_ids=self._ids(past), use_cache=True).past_key_values
        token = self._ids(1)
        position = self.torch.tensor([[past]])

        def run() -> None:
            # The cache grows in place by one token per call: past drifts from P to P + (a few dozen),
            # negligible next to P for attention and irrelevant for the linear-attention layers.
            with self.torch.inference_mode():
                self.model(input_ids=token, past_key_values=cache, position_ids=position, use_cache=True)

        return run


def _timed(measure: Measure, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        measure()
    return (time.perf_counter() - started) / calls * 1000


def time_round_robin(targets: dict[str, object], plan: list[tuple[str, int]], repeats: int) -> dict:
    """plan: [("prefill", 128), ("decode", 2048), ...]; returns name -> metric -> median ms."""
    results: dict[str, dict[str, dict]] = {name: {} for name in targets}
    for kind, size in plan:
        key = f"{kind}_{size}"
        measures = {name: getattr(target, kind)(size) for name, target in targets.items()}
        calls: dict[str, int] = {}
        for name, measure in measures.items():
            measure()  # warm-up: first-run allocations and kernel selection
            once_ms = _timed(measure, 1)
            calls[name] = int(min(MAX_CALLS_PER_SAMPLE, max(1, MIN_SAMPLE_MS // max(once_ms, 1e-3))))
        samples: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(repeats):
            for name, measure in measures.items():  # interleaved: A B C A B C ...
                samples[name].append(_timed(measure, calls[name]))
        for name, values in samples.items():
            results[name][key] = {
                "median_ms": statistics.median(values),
                "samples_ms": values,
                "calls": calls[name],
            }
            log.info("%s %s: %.2f ms", name, key, statistics.median(values))
    return results


def _load(spec: str, threads: int, vocab: int, checkpoint: Path):
    name, engine, path = spec.split("=", 2)
    if engine == "torch":
        return name, TorchTarget(Path(path), threads, vocab)
    return name, OrtTarget(Path(path), threads, vocab)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--variant", action="append", required=True, help="NAME=ours|genai|torch=PATH")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--plan", default="prefill:128,prefill:512,decode:128")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = json.loads((args.checkpoint / "config.json").read_text())
    vocab = int(config.get("text_config", config)["vocab_size"])
    targets: dict[str, object] = {}
    rss_after_load: dict[str, float] = {}
    load_s: dict[str, float] = {}
    for spec in args.variant:
        name, target = _load(spec, args.threads, vocab, args.checkpoint)
        targets[name] = target
        rss_after_load[name] = peak_rss_mb()
        load_s[name] = target.load_s
    plan = [(kind, int(size)) for kind, size in (item.split(":") for item in args.plan.split(","))]
    timings = time_round_robin(targets, plan, args.repeats)
    payload = {
        "threads": args.threads,
        "timings": timings,
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_load_mb": rss_after_load,
    }
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
