"""qwen35web.mjs, the module a developer imports: the example page, events, abort, dispose, typed errors.

One page (example.html) loads the model through the module as a developer's page would; the API tests
then import the module in that page themselves and load a second instance (window.model) to drive it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tokenizers import Tokenizer as HFTokenizer

from tests.browser.pages import MODEL_NAME, SCREENSHOT_DIR, WatchedPage, watch
from tests.browser.references import hf_greedy

pytestmark = pytest.mark.browser

EXAMPLE_TOKENS = 24  # example.js asks for 24 greedy tokens
IMPORT = "const m = await import('./qwen35web.mjs');"


@pytest.fixture(scope="module")
def example_page(browser, base_url: str) -> Iterator[WatchedPage]:
    context = browser.new_context()
    context.set_default_timeout(120_000)
    watched = watch(context, base_url)
    watched.page.goto(base_url + "example.html")
    watched.page.wait_for_selector("#generate:not([disabled]), #error:not([hidden])")
    yield watched
    context.close()


@pytest.fixture(scope="module")
def module_model(example_page: WatchedPage) -> WatchedPage:
    """window.model: the site's default model loaded by the test through the module (wasm)."""
    phases = example_page.page.evaluate(f"""async () => {{
        {IMPORT}
        const phases = [];
        const entry = await m.siteModel();
        const onProgress = p => phases.push(p);
        window.model = await m.load({{ bundle: entry.bundle, backend: 'wasm', onProgress }});
        return phases;
    }}""")
    names = [p["phase"] for p in phases]
    assert names[0] == "runtime" and names[-1] == "session" and "download" in names
    # The example page stored the weights already: this load takes them from browser storage.
    first_download = next(p for p in phases if p["phase"] == "download")
    assert first_download["total"] == 0 and first_download["cachedBytes"] > 0
    return example_page


def test_example_page_generates_through_the_module(
    example_page: WatchedPage, export_bundle, tiny_reference
) -> None:
    page = example_page.page
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    assert page.locator("#status").inner_text().startswith(f"ready: {MODEL_NAME} on ")
    page.fill("#prompt", "Hello world")
    page.click("#generate")
    page.wait_for_selector("#stats[data-tokens]")
    tokens = json.loads(page.get_attribute("#stats", "data-tokens") or "[]")
    tokenizer = HFTokenizer.from_file(str(export_bundle("text", "fused") / "tokenizer.json"))
    prompt_ids = tokenizer.encode("Hello world", add_special_tokens=False).ids
    assert tokens == hf_greedy(tiny_reference, prompt_ids, EXAMPLE_TOKENS, [2])
    assert page.locator("#output").inner_text().strip() != ""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "example.png"), full_page=True)
    example_page.assert_clean()


def test_generate_streams_deltas_then_done(module_model: WatchedPage) -> None:
    events = module_model.page.evaluate("""async () => {
        const events = [];
        const request = { prompt: 'Hello', maxNewTokens: 6, minNewTokens: 6, greedy: true };
        for await (const e of window.model.generate(request)) events.push(e);
        return events;
    }""")
    *deltas, done = events
    assert done["type"] == "done" and len(done["stats"]["tokens"]) == 6
    assert all(e["type"] == "delta" and e["kind"] == "text" for e in deltas)
    assert "".join(e["text"] for e in deltas) == done["stats"]["text"]
    assert done["stats"]["model"] == MODEL_NAME and done["stats"]["backend"] == "wasm"
    module_model.assert_clean()


def test_abort_signal_stops_with_partial_stats_and_the_model_goes_on(module_model: WatchedPage) -> None:
    outcome = module_model.page.evaluate("""async () => {
        const { AbortError } = await import('./qwen35web.mjs');
        const controller = new AbortController();
        let deltas = 0;
        try {
            const request = { prompt: 'Hello', maxNewTokens: 3000, minNewTokens: 3000 };
            for await (const e of window.model.generate(request, { signal: controller.signal })) {
                if (e.type === 'delta' && ++deltas === 3) controller.abort();
            }
            return { thrown: null };
        } catch (err) {
            return { thrown: err.name, isAbort: err instanceof AbortError, code: err.code, stats: err.stats };
        }
    }""")
    assert outcome["thrown"] == "AbortError" and outcome["isAbort"] and outcome["code"] == "aborted"
    assert outcome["stats"]["stopReason"] == "cancelled" and 3 <= len(outcome["stats"]["tokens"]) < 3000
    # Breaking out of the loop early also stops the worker: the next call runs at once.
    after = module_model.page.evaluate("""async () => {
        const long = { prompt: 'Hi', maxNewTokens: 3000, minNewTokens: 3000 };
        for await (const e of window.model.generate(long)) break;
        const t = performance.now();
        let done = null;
        const short = { prompt: 'Hi', maxNewTokens: 2, greedy: true };
        for await (const e of window.model.generate(short)) done = e;
        return { tokens: done.stats.tokens.length, ms: performance.now() - t };
    }""")
    assert after["tokens"] == 2 and after["ms"] < 20_000
    module_model.assert_clean()


@pytest.mark.parametrize(
    ("script", "name", "code", "message"),
    [
        (
            "window.model.generate({ prompt: 'x', topP: NaN }).next()",
            "InputError",
            "bad-input",
            "topP must be a finite number, got NaN",
        ),
        (
            "window.model.generate({ prompt: '' }).next()",
            "InputError",
            "bad-input",
            "the prompt is empty",
        ),
        ("window.model.logits([1, 99999])", "InputError", "bad-input", "token ids must lie in [0, 512)"),
        (
            "m.load({})",
            "InputError",
            "bad-input",
            "load() needs a bundle: its URL, or {default, wasm?, webgpu?} URLs",
        ),
        (
            "m.load({ bundle: './models/no-such-model/' })",
            "BundleError",
            "bad-bundle",
            "manifest.json: the server answered HTTP 404",
        ),
        (
            "m.load({ bundle: './models/" + MODEL_NAME + "/', backend: 'tpu' })",
            "InputError",
            "bad-input",
            'unknown backend "tpu" (use "webgpu" or "wasm")',
        ),
        (
            "m.siteModel('nope')",
            "InputError",
            "bad-input",
            f'unknown model "nope" (this site has: {MODEL_NAME})',
        ),
    ],
    ids=[
        "nan",
        "empty-prompt",
        "id-out-of-vocab",
        "no-bundle",
        "missing-bundle",
        "unknown-backend",
        "unknown-model",
    ],
)
def test_failures_are_typed_errors(
    module_model: WatchedPage, script: str, name: str, code: str, message: str
) -> None:
    got = module_model.page.evaluate(f"""async () => {{
        {IMPORT}
        try {{ await {script}; return null; }}
        catch (err) {{
            const typed = err instanceof m[err.name];
            return {{ name: err.name, code: err.code, message: err.message, typed }};
        }}
    }}""")
    assert got == {"name": name, "code": code, "message": message, "typed": True}


def test_aborted_load_and_disposed_model_reject_with_abort_errors(module_model: WatchedPage) -> None:
    got = module_model.page.evaluate(f"""async () => {{
        {IMPORT}
        const controller = new AbortController();
        // Abort once the load reports its first progress: mid-load by what the module says, not by a timer.
        const loading = m.load({{
            bundle: './models/{MODEL_NAME}/', signal: controller.signal, onProgress: () => controller.abort(),
        }});
        const aborted = await loading.then(() => 'loaded', e => e.name);
        const other = await m.load({{ bundle: './models/{MODEL_NAME}/', backend: 'wasm' }});
        other.dispose();
        const disposed = await other.tokenize('x').then(() => 'answered', e => e.name);
        return {{ aborted, disposed, flag: other.disposed }};
    }}""")
    assert got == {"aborted": "AbortError", "disposed": "AbortError", "flag": True}
    # The first model is untouched by the other's dispose.
    assert module_model.page.evaluate("window.model.tokenize('Hello')") != []
    module_model.assert_clean()


def test_chat_completions_create_speaks_openais_shapes(module_model: WatchedPage) -> None:
    """model.chat.completions.create: a ChatCompletion, a stream of chunks, a forced tool call whose
    arguments parse (random weights: the output is constrained), refusals as typed errors carrying
    OpenAI's error object, and leaving a stream early frees the model."""
    got = module_model.page.evaluate("""async () => {
        const { InputError } = await import('./qwen35web.mjs');
        const completions = window.model.chat.completions;
        const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
        const reply = await completions.create({ messages, max_tokens: 6, temperature: 0 });
        const chunks = [];
        const stream = await completions.create({ messages, max_tokens: 6, temperature: 0, stream: true });
        for await (const chunk of stream) chunks.push(chunk);
        const weather = { type: 'function', function: { name: 'get_weather', parameters: {
            type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
        const forced = await completions.create({ messages, tools: [weather], max_tokens: 96, seed: 1,
            tool_choice: { type: 'function', function: { name: 'get_weather' } } });
        const refusal = async (params) => {
            try { await completions.create(params); return null; }
            catch (err) {
                const typed = err instanceof InputError;
                return { typed, error: err.error || null, status: err.status || null, message: err.message };
            }
        };
        const missingTool = await refusal({ messages, tools: [weather], stream: true,
            tool_choice: { type: 'function', function: { name: 'time' } } });
        const image = await refusal({ messages: [{ role: 'user', content: [
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }] });
        const long = { messages, max_tokens: 3000, min_tokens: 3000, stream: true };
        const controller = new AbortController();
        let aborted = null;
        let seen = 0;
        try {
            for await (const chunk of await completions.create(long, { signal: controller.signal })) {
                if (++seen === 3) controller.abort();
            }
        } catch (err) {
            aborted = { name: err.name, code: err.code, seen };
        }
        for await (const chunk of await completions.create(long)) break;
        const t = performance.now();
        const after = await completions.create({ messages, max_tokens: 2, temperature: 0 });
        const ms = performance.now() - t;
        const rest = { missingTool, image, aborted, after: after.usage.completion_tokens, ms };
        return { reply, chunks, forced, ...rest };
    }""")
    reply, chunks = got["reply"], got["chunks"]
    assert reply["object"] == "chat.completion" and reply["model"] == MODEL_NAME
    assert reply["choices"][0]["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 6
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert streamed == reply["choices"][0]["message"]["content"]  # greedy both times
    choice = got["forced"]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"] and call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"])["city"], str)
    missing = got["missingTool"]
    assert missing["typed"] and missing["status"] == 400 and missing["error"]["param"] == "tool_choice"
    assert got["image"]["typed"] and "takes no images" in got["image"]["message"]
    assert got["aborted"]["name"] == "AbortError" and got["aborted"]["code"] == "aborted"
    assert 3 <= got["aborted"]["seen"] < 3000
    assert got["after"] == 2 and got["ms"] < 20_000
    module_model.assert_clean()
