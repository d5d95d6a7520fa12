"""What the page must agree with: PyTorch (transformers) and the native runtime on the same bundle."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from qwen35web.runtime.sampling import SamplingParams


def torch_last_logits(model, ids: list[int]) -> list[float]:
    """PyTorch's logits for the last position after `ids` (one full forward)."""
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].float().tolist()


def hf_greedy(model, ids: list[int], max_new_tokens: int, eos_ids: list[int]) -> list[int]:
    """transformers' greedy generate(); the new tokens without the final EOS (the runtime omits it)."""
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos_ids,
            pad_token_id=0,
        )
    new = out[0, len(ids) :].tolist()
    return new[:-1] if new and new[-1] in eos_ids else new


def native_tokens(bundle: Path, prompt: str, params: SamplingParams, prefill_chunk: int = 256) -> list[int]:
    """qwen35web.runtime on CPython + onnxruntime: the tokens it generates for `prompt` with `params`."""

    async def run() -> list[int]:
        from qwen35web.runtime.native.open_bundle import open_native

        runtime = await open_native(bundle, prefill_chunk=prefill_chunk)
        try:
            result = await runtime.generate(runtime.prompt_ids(prompt), params)
            return result.tokens
        finally:
            await runtime.close()

    # In its own thread: Playwright's sync API keeps an event loop on the test's thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def max_abs_difference(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b), f"lengths differ: {len(a)} vs {len(b)}"
    return max(abs(x - y) for x, y in zip(a, b, strict=True))
