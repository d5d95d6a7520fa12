"""The runtime natively: greedy parity with transformers, seeded sampling, streaming, errors, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qwen35web.export.validate import reference_greedy
from qwen35web.runtime.errors import GenerationInputError
from qwen35web.runtime.generation import CancelToken
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from tests.old_bundles import FORMAT_1_MESSAGE
from tests.run_async import run_async

ROOT = Path(__file__).resolve().parents[3]
PROMPT_IDS = [17, 250, 3, 99, 412, 64, 64, 7, 311, 150, 42, 8]


async def _generate(bundle: Path, prompt_ids: list[int], params: SamplingParams, prefill_chunk: int = 256):
    runtime = await open_native(bundle, prefill_chunk=prefill_chunk)
    try:
        return await runtime.generate(prompt_ids, params)
    finally:
        await runtime.close()


@pytest.mark.parametrize("ops", ["fused", "portable"])
def test_greedy_32_tokens_equal_transformers(export_bundle, tiny_reference, ops):
    # eos is never produced by min_new_tokens in the reference; disable it on our side the same way.
    result = run_async(
        _generate(export_bundle("text", ops), PROMPT_IDS, SamplingParams(greedy=True, max_new_tokens=32))
    )
    expected = reference_greedy(tiny_reference, np.array(PROMPT_IDS), 32)
    cut = expected.index(2) if 2 in expected else 32  # 2 is the tiny model's eos
    assert result.tokens == expected[:cut]


def test_chunked_prefill_gives_the_same_tokens(export_bundle):
    bundle = export_bundle("text", "fused")
    params = SamplingParams(greedy=True, max_new_tokens=16)
    whole = run_async(_generate(bundle, PROMPT_IDS * 6, params))
    chunked = run_async(_generate(bundle, PROMPT_IDS * 6, params, prefill_chunk=5))
    assert whole.tokens == chunked.tokens


def test_seeded_sampling_is_reproducible(export_bundle):
    bundle = export_bundle("text", "fused")
    params = SamplingParams(temperature=1.5, top_k=50, top_p=0.95, seed=11, max_new_tokens=24)
    first = run_async(_generate(bundle, PROMPT_IDS, params))
    second = run_async(_generate(bundle, PROMPT_IDS, params))
    other = run_async(
        _generate(bundle, PROMPT_IDS, SamplingParams(temperature=1.5, top_k=50, seed=12, max_new_tokens=24))
    )
    assert first.tokens == second.tokens
    assert first.tokens != other.tokens


def test_stream_pieces_concatenate_to_the_text(export_bundle):
    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        pieces = [p async for p in runtime.stream(PROMPT_IDS, SamplingParams(seed=3, max_new_tokens=20))]
        result = runtime.generator.result
        text = runtime.tokenizer.decode(result.tokens, skip_special_tokens=True)
        await runtime.close()
        return pieces, result, text

    pieces, result, text = run_async(go())
    assert "".join(pieces) == result.text == text


def test_cancel_then_next_greedy_run_is_identical(export_bundle):
    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        params = SamplingParams(greedy=True, max_new_tokens=20)
        baseline = (await runtime.generate(PROMPT_IDS, params)).tokens
        cancel = CancelToken()
        count = 0
        async for _ in runtime.stream(PROMPT_IDS, SamplingParams(seed=1, max_new_tokens=50), cancel):
            count += 1
            if count == 3:
                cancel.cancel()
        cancelled = runtime.generator.result
        again = (await runtime.generate(PROMPT_IDS, params)).tokens
        await runtime.close()
        return baseline, cancelled, again

    baseline, cancelled, again = run_async(go())
    assert cancelled.stop_reason == "cancelled" and len(cancelled.tokens) < 50
    assert again == baseline


@pytest.mark.parametrize(
    ("prompt", "kwargs", "message"),
    [
        ("", {}, "empty"),
        ("   ", {"chat": True}, "empty"),
        ("a\udcff b", {}, "not valid Unicode"),
        ("lone \ud800", {"chat": True}, "not valid Unicode"),
    ],
)
def test_prompt_errors(export_bundle, prompt, kwargs, message):
    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        try:
            runtime.prompt_ids(prompt, **kwargs)
        finally:
            await runtime.close()

    with pytest.raises(GenerationInputError, match=message):
        run_async(go())


def test_prompt_beyond_context_is_rejected(export_bundle):
    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        try:
            await runtime.generate([5] * 5000, SamplingParams(greedy=True))
        finally:
            await runtime.close()

    with pytest.raises(GenerationInputError, match="context"):
        run_async(go())


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "qwen35web", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_cli_json(export_bundle):
    proc = _cli(
        "generate",
        str(export_bundle("text", "fused")),
        "--prompt",
        "Hello world",
        "--chat",
        "--max-new-tokens",
        "8",
        "--greedy",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in ("tokens", "text", "prompt_tokens", "prefill_ms", "decode_tokens_per_s"):
        assert key in result
    assert result["prompt_tokens"] > 2


@pytest.mark.parametrize(
    "args",
    [
        ["--prompt", ""],
        ["--prompt", "x", "--temperature", "-1"],
        ["--prompt", "x", "--top-p", "nan"],
        ["--prompt", "x", "--max-new-tokens", "0"],
    ],
    ids=["empty-prompt", "negative-temperature", "nan-top-p", "zero-tokens"],
)
def test_cli_bad_input_is_one_line(export_bundle, args):
    proc = _cli("generate", str(export_bundle("text", "fused")), *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr


def test_cli_missing_bundle(tmp_path):
    proc = _cli("generate", str(tmp_path / "nope"), "--prompt", "x")
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_refuses_a_format_1_bundle_in_one_line(format_1_bundle):
    proc = _cli("generate", str(format_1_bundle), "--prompt", "x")
    assert proc.returncode == 2
    assert proc.stderr == f"error: {FORMAT_1_MESSAGE}\n"


def test_runner_feeds_explicit_mrope_rows_and_text_continues_after_them(export_bundle, tiny_reference):
    """forward(ids, positions) takes an image's 3 rows; text then continues one past their largest."""
    import torch

    from qwen35web.export.validate import image_prompt_positions

    ids = [int(i) for i in np.random.default_rng(9).integers(0, 500, size=24)]
    image = image_prompt_positions(20)  # [3, 20], distinct rows
    resume = int(image.max()) + 1
    positions = np.concatenate([image, np.array([list(range(resume, resume + 4))] * 3)], axis=1)
    with torch.no_grad():
        ref = tiny_reference(torch.tensor([ids]), position_ids=torch.from_numpy(positions)[:, None]).logits[0]

    async def go():
        runtime = await open_native(export_bundle("text", "fused"))
        runner = runtime.runner
        try:
            runner.reset()
            await runner.forward(ids[:20], image.tolist())
            got = [await runner.last_logits()]
            assert (runner.past_len, runner.next_position) == (20, resume)
            for token in ids[20:]:
                await runner.forward([token])  # default: text rows from next_position
                got.append(await runner.last_logits())
            with pytest.raises(GenerationInputError, match="3 rows of 2"):
                await runner.forward([1, 2], [[0, 1], [0, 1]])
            return got
        finally:
            await runtime.close()

    got = np.array(run_async(go()))
    np.testing.assert_allclose(got, ref[19:].numpy(), rtol=0, atol=1e-5)
