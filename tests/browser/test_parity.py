"""The page against PyTorch and the native runtime, on both backends (tiny random checkpoint).

wasm runs the fp32 graph on the CPU; webgpu runs it on SwiftShader here (fp32, slow), with every
model output kept on the GPU and fed back: the same checks prove the state hand-off there.
"""

from __future__ import annotations

import pytest

from qwen35web.runtime.sampling import SamplingParams
from tests.browser.pages import MODEL_NAME, WatchedPage, open_page
from tests.browser.references import hf_greedy, max_abs_difference, native_tokens, torch_last_logits

pytestmark = pytest.mark.browser

LOGITS_TOLERANCE = {"wasm": 1e-4, "webgpu": 1e-3}
FIXED_IDS = [5, 17, 42, 99, 3, 250, 511, 7, 64, 128, 300, 1, 77, 460, 33, 200]
PREFILL_CHUNK = 8  # the pages load with ?prefillChunk=8
LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 4  # several prefill chunks
SEED = 1234


@pytest.fixture(scope="module", params=["wasm", "webgpu"])
def backend_page(request, browser, base_url: str):
    watched = open_page(browser, base_url, request.param, f"&prefillChunk={PREFILL_CHUNK}")
    yield watched
    watched.page.context.close()


def _generate(watched: WatchedPage, **options) -> dict:
    return watched.page.evaluate("options => app.generate(options)", options)


def _tokenize(watched: WatchedPage, text: str) -> list[int]:
    return watched.page.evaluate("text => app.tokenize(text)", text)


def test_ready_names_backend_and_model(backend_page: WatchedPage) -> None:
    assert backend_page.ready() == {"backend": backend_page.backend, "model": MODEL_NAME}
    backend_page.assert_clean()


def test_logits_match_pytorch(backend_page: WatchedPage, tiny_reference, browser_report) -> None:
    backend_page.ready()
    logits = backend_page.page.evaluate("ids => app.logits(ids)", FIXED_IDS)
    reference = torch_last_logits(tiny_reference, FIXED_IDS)
    difference = max_abs_difference(logits, reference)
    browser_report[f"{backend_page.backend}_logits_max_abs_vs_pytorch"] = difference
    assert difference <= LOGITS_TOLERANCE[backend_page.backend], difference
    backend_page.assert_clean()


def test_greedy_32_tokens_match_transformers(
    backend_page: WatchedPage, tiny_reference, browser_report
) -> None:
    backend_page.ready()
    prompt = "Hello world"
    result = _generate(backend_page, prompt=prompt, maxNewTokens=32, greedy=True)
    expected = hf_greedy(tiny_reference, _tokenize(backend_page, prompt), 32, [2])
    assert result["tokens"] == expected
    assert result["backend"] == backend_page.backend
    assert result["prefillMs"] > 0 and result["decodeTokensPerSecond"] > 0
    browser_report[f"{backend_page.backend}_greedy_32_tokens"] = {
        key: round(result[key], 3) for key in ("prefillMs", "decodeTokensPerSecond", "pythonShare")
    }
    backend_page.assert_clean()


def test_prompt_longer_than_a_prefill_chunk(backend_page: WatchedPage, tiny_reference) -> None:
    backend_page.ready()
    ids = _tokenize(backend_page, LONG_PROMPT)
    assert len(ids) > 2 * PREFILL_CHUNK
    result = _generate(backend_page, prompt=LONG_PROMPT, maxNewTokens=8, greedy=True)
    assert result["promptTokens"] == len(ids)
    assert result["tokens"] == hf_greedy(tiny_reference, ids, 8, [2])
    backend_page.assert_clean()


def test_seeded_sampling_matches_native_runtime(backend_page: WatchedPage, export_bundle) -> None:
    """Varied tokens (greedy repeats one token on random weights): decode states and chunked prefill
    must give exactly what the native runtime gives in one prefill call, draw for draw."""
    backend_page.ready()
    result = _generate(backend_page, prompt=LONG_PROMPT, maxNewTokens=16, temperature=1.0, seed=SEED)
    params = SamplingParams(temperature=1.0, seed=SEED, max_new_tokens=16)
    expected = native_tokens(export_bundle("text", "fused"), LONG_PROMPT, params)
    assert len(set(expected)) > 4, "the reference should not be a repetition"
    assert result["tokens"] == expected
    backend_page.assert_clean()


def test_no_tensor_leaks_across_runs(backend_page: WatchedPage) -> None:
    backend_page.ready()
    counts = []
    for _ in range(2):
        _generate(backend_page, prompt="Hello", maxNewTokens=4, greedy=True)
        counts.append(backend_page.page.evaluate("app.stats()"))
    counted = [{key: c[key] for key in ("liveTensors", "heldTensors", "keptStates")} for c in counts]
    assert counted[0] == counted[1]
    assert counts[1]["liveTensors"] == counts[1]["heldTensors"]  # states + logits, nothing else
    backend_page.assert_clean()


def test_penalised_greedy_matches_native_runtime(backend_page: WatchedPage, export_bundle) -> None:
    """Presence/frequency penalties in the page's sampler graph (wasm, WebGPU) choose as natively."""
    backend_page.ready()
    penalties = {"presencePenalty": 1.5, "frequencyPenalty": 0.5}
    result = _generate(backend_page, prompt=LONG_PROMPT, maxNewTokens=16, greedy=True, **penalties)
    params = SamplingParams(greedy=True, presence_penalty=1.5, frequency_penalty=0.5, max_new_tokens=16)
    expected = native_tokens(export_bundle("text", "fused"), LONG_PROMPT, params)
    assert len(set(expected)) > 4, "the penalties should break greedy's repetition"
    assert result["tokens"] == expected
    backend_page.assert_clean()
