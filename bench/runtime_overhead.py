"""Python overhead of the native runtime: time outside onnxruntime per decode step, and tokens/s.

    .venv/bin/python bench/runtime_overhead.py BUNDLE_DIR [--tokens 64] [--prompt-tokens 32] [--threads 2]

Prints one JSON line and appends it to bench/results/runtime-overhead.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qwen35web.runtime.native.open_bundle import open_native  # noqa: E402
from qwen35web.runtime.sampling import SamplingParams  # noqa: E402


async def measure(bundle: Path, tokens: int, prompt_tokens: int, threads: int | None) -> dict:
    runtime = await open_native(bundle, threads=threads, verify_hashes=False)
    prompt = [(7 * i + 3) % 400 + 10 for i in range(prompt_tokens)]
    results = {}
    for name, params in {
        "greedy": SamplingParams(greedy=True, max_new_tokens=tokens),
        "top_k_top_p": SamplingParams(temperature=0.8, top_k=40, top_p=0.9, seed=0, max_new_tokens=tokens),
    }.items():
        runtime.generator.eos_ids = frozenset()  # measure exactly `tokens` steps
        start = time.perf_counter()
        result = await runtime.generate(prompt, params)
        results[name] = {
            "tokens": len(result.tokens),
            "prefill_ms": round(result.prefill_ms, 2),
            "decode_ms_per_token": round(result.decode_ms / max(1, len(result.tokens)), 3),
            "decode_tokens_per_s": round(result.decode_tokens_per_s, 2),
            "python_share": round(result.python_share, 4),
            "wall_s": round(time.perf_counter() - start, 2),
        }
    await runtime.close()
    return {"bundle": str(bundle), "threads": threads, "prompt_tokens": prompt_tokens, **results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    record = asyncio.run(measure(args.bundle, args.tokens, args.prompt_tokens, args.threads))
    line = json.dumps(record)
    print(line)
    out = ROOT / "bench" / "results" / "runtime-overhead.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
