"""Soak: memory stays flat over many decode steps and many generations.

`make test` runs the short form; `make soak` (SOAK=full) runs 1,000 steps and 50 generations.
"""

from __future__ import annotations

import asyncio
import os
import resource
from concurrent.futures import ThreadPoolExecutor

from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams

PROMPT = [17, 250, 3, 99, 412, 64]
FULL = os.environ.get("SOAK") == "full"
STEPS, GENERATIONS = (1000, 50) if FULL else (300, 20)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


async def _soak(bundle, generations: int, steps: int) -> tuple[list[float], int]:
    runtime = await open_native(bundle, threads=1)
    rss = []
    long = await runtime.generate(PROMPT, SamplingParams(seed=0, max_new_tokens=steps, min_new_tokens=steps))
    for i in range(generations):
        await runtime.generate(PROMPT, SamplingParams(seed=i, temperature=0.9, top_k=20, max_new_tokens=32))
        rss.append(_rss_mb())
    await runtime.close()
    return rss, len(long.tokens)


def test_rss_is_flat_over_many_steps_and_generations(export_bundle):
    with ThreadPoolExecutor(1) as pool:
        soak = _soak(export_bundle("text", "fused"), GENERATIONS, STEPS)
        rss, long_tokens = pool.submit(asyncio.run, soak).result()
    assert long_tokens == STEPS
    # Once the first few runs have warmed the allocators, further generations may not grow memory.
    print(f"soak: {long_tokens} steps, {len(rss)} generations, RSS {rss[5]:.1f} -> {rss[-1]:.1f} MB")
    assert rss[-1] - rss[5] < 10, rss
