"""State reuse: after a kept state, logits and tokens equal a fresh prefill of the same ids.

The split point (where the kept state ends and the new prefill begins) sits 1, 63, 64 and 65
tokens into a prefill chunk of 64 (the delta rule's own chunk in the portable body).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.native.engine import NativeEngine
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from tests.run_async import run_async

PROMPT = [(i * 37 + 11) % 500 + 3 for i in range(180)]
CHUNK = 64
GREEDY = SamplingParams(greedy=True, max_new_tokens=16)
SAMPLED = SamplingParams(temperature=1.0, seed=5, max_new_tokens=16)


async def _fresh(bundle: Path, ids: list[int]) -> tuple[np.ndarray, list[int], list[int]]:
    """Logits after `ids`, greedy and sampled tokens, each from a runtime that keeps nothing."""
    runtime = await open_native(bundle, prefill_chunk=CHUNK, kept_states_budget=0)
    try:
        logits = np.array(await runtime.logits(ids))
        greedy = (await runtime.generate(ids, GREEDY)).tokens
        sampled = (await runtime.generate(ids, SAMPLED)).tokens
        return logits, greedy, sampled
    finally:
        await runtime.close()


async def _keep_prefix(runtime: Runtime, split: int) -> None:
    """A first call on PROMPT[:split]; its short reply forwards 3 tokens past the split."""
    runtime.cache.clear()
    runtime.runner.reset()
    first = await runtime.generate(PROMPT[:split], SamplingParams(greedy=True, max_new_tokens=4))
    assert first.reused_tokens == 0
    assert first.tokens[:3] != PROMPT[split : split + 3], "the reply must leave the prompt's path"
    prompt_state = next(s for s in runtime.cache.kept if s.length == split)
    # The reply's KV extends the prompt's: the prompt's kept state keeps only the longer one, cut on restore.
    assert prompt_state.kv_tensor_len == split + 3


async def _reused(bundle: Path, split: int):
    runtime = await open_native(bundle, prefill_chunk=CHUNK)
    try:
        await _keep_prefix(runtime, split)
        reused = await runtime.generator.prefill(PROMPT)
        logits = np.array(await runtime.runner.last_logits())
        results = []
        for params in (GREEDY, SAMPLED):
            await _keep_prefix(runtime, split)
            results.append(await runtime.generate(PROMPT, params))
        return reused, logits, results
    finally:
        await runtime.close()


@pytest.mark.parametrize("ops", ["fused", "portable"])
@pytest.mark.parametrize("split", [1, 63, 64, 65])
def test_reuse_equals_a_fresh_prefill(export_bundle, ops, split):
    bundle = export_bundle("text", ops)
    fresh_logits, fresh_greedy, fresh_sampled = run_async(_fresh(bundle, PROMPT))
    reused, logits, (greedy, sampled) = run_async(_reused(bundle, split))
    assert reused == split
    assert np.abs(logits - fresh_logits).max() <= 1e-5
    assert greedy.tokens == fresh_greedy and sampled.tokens == fresh_sampled
    for result in (greedy, sampled):
        assert (result.reused_tokens, result.prefilled_tokens) == (split, len(PROMPT) - split)


def test_the_next_call_resumes_after_the_reply(export_bundle):
    """The state after a reply holds prompt + reply (the last token was never run): a prompt that
    continues it prefills only what follows."""

    async def go():
        runtime = await open_native(export_bundle("text", "fused"), prefill_chunk=CHUNK)
        first = await runtime.generate(PROMPT[:40], SAMPLED)
        follow = PROMPT[:40] + first.tokens + [7, 8, 9]
        second = await runtime.generate(follow, GREEDY)
        again = await runtime.generate(follow, GREEDY)  # the same prompt again: nothing to prefill
        await runtime.close()
        return first, second, again, follow

    first, second, again, follow = run_async(go())
    assert first.stop_reason == "max_new_tokens"
    assert second.reused_tokens == 40 + len(first.tokens) - 1
    assert second.tokens == run_async(_fresh(export_bundle("text", "fused"), follow))[1]
    assert again.tokens == second.tokens


class CountingEngine(NativeEngine):
    """The web engine's contract natively: every tensor handed out is live until released."""

    def __init__(self) -> None:
        super().__init__(threads=1)
        self.live: dict[int, object] = {}

    def _track(self, tensor):
        self.live[id(tensor)] = tensor
        return tensor

    def int64(self, values, dims):
        return self._track(super().int64(values, dims))

    def float32(self, values, dims):
        return self._track(super().float32(values, dims))

    def ones_int64(self, dims):
        return self._track(super().ones_int64(dims))

    def zeros(self, dtype, dims):
        return self._track(super().zeros(dtype, dims))

    def cut(self, tensor, axis, length):
        return self._track(super().cut(tensor, axis, length))

    def from_bytes(self, dtype, dims, data):
        return self._track(super().from_bytes(dtype, dims, data))

    async def run(self, role, feeds, outputs):
        return {name: self._track(t) for name, t in (await super().run(role, feeds, outputs)).items()}

    def release(self, tensor):
        assert self.live.pop(id(tensor), None) is not None, "released twice, or never handed out"

    def live_tensors(self) -> int:
        return len(self.live)


def test_kept_tensors_are_counted_and_nothing_leaks(export_bundle):
    """Each tensor is freed once, when its last holder lets go; the budget bounds what is kept."""
    from qwen35web.runtime.engine import MODEL_ROLE, SAMPLER_ROLE
    from qwen35web.runtime.manifest import load_local_manifest
    from qwen35web.runtime.tokenizer import Tokenizer

    bundle = export_bundle("text", "fused")

    async def go():
        engine = CountingEngine()
        await engine.open(MODEL_ROLE, str(bundle / "model.onnx"))
        await engine.open(SAMPLER_ROLE, str(bundle / "sampler.onnx"))
        manifest = load_local_manifest(bundle)
        tokenizer = Tokenizer.from_file(bundle / "tokenizer.json")
        runtime = Runtime(manifest, tokenizer, engine, prefill_chunk=CHUNK, kept_states_budget=60_000)
        counts = []
        for i in range(12):
            await runtime.generate(PROMPT[: 20 + 13 * i], SamplingParams(seed=i, max_new_tokens=6))
            stats = runtime.cache.stats()
            counts.append((engine.live_tensors(), runtime.held_tensors(), stats.held_bytes))
        evicted = runtime.cache.evicted
        await runtime.close()
        return counts, evicted, engine.live_tensors()

    counts, evicted, live_after_close = run_async(go())
    assert all(live == held for live, held, _ in counts), counts
    assert all(held_bytes <= 60_000 for _, _, held_bytes in counts)
    assert evicted > 0  # the budget was reached, and the oldest states were dropped
    assert live_after_close == 0
