"""The demo page's tools (page/demo-tools.js, calculator.js, tool-loop.js): the calculator's parser run
in the page, a forced call on random weights folded above the answer with its result and kept by a
reload (the next turn reuses the restored state), bad calls answered with an error result, and the
cap on rounds. The tiny random model calls tools only when forced (?toolChoice=, tool_choice)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving
from tests.browser.pages import MODEL_NAME, READY_TIMEOUT_MS, SCREENSHOT_DIR, WatchedPage, watch
from tests.runtime.tool_fixtures import TOOL_TEMPLATE

pytestmark = pytest.mark.browser

SCREENSHOT = SCREENSHOT_DIR / "tools.png"  # docs/tools.png is a copy of one
QUERY = "?backend=wasm&tools=1&toolChoice=current_time"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, export_bundle) -> Iterator[str]:
    """The tiny random bundle with a template that lists the tools and renders tool turns as
    Qwen3.5's does (tests/runtime/tool_fixtures.py)."""
    bundle = tmp_path_factory.mktemp("tools-bundle") / "bundle"
    shutil.copytree(export_bundle("text", "fused"), bundle)
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["chat_template"] = TOOL_TEMPLATE
    manifest_path.write_text(json.dumps(manifest, indent=2))
    site = tmp_path_factory.mktemp("tools-web") / "site"
    build_site(SiteSpec(site, [(MODEL_NAME, bundle)], {MODEL_NAME: "Seeded tiny random checkpoint (test)."}))
    with serving(site) as url:
        yield url


@pytest.fixture(scope="module")
def tools_context(browser) -> Iterator:
    """One context for the module: its IndexedDB keeps the stored chat across the reload."""
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    context.set_default_timeout(READY_TIMEOUT_MS)
    yield context
    context.close()


def _open(context, base_url: str, query: str = QUERY) -> WatchedPage:
    watched = watch(context, base_url)
    watched.page.goto(f"{base_url}{query}")
    watched.page.evaluate("app.chatReady")
    return watched


def _send(page, text: str) -> dict:
    page.fill("#prompt", text)
    page.click("#generate")
    page.wait_for_selector("#generate:not([disabled])")  # the turn (every round of it) is over
    expect(page.locator("#error")).to_be_hidden()
    return page.evaluate("app.lastTurn()")


CALCULATOR_TABLE = """async () => {
    const { evaluate } = await import('./page/calculator.js');
    const cases = ['1 + 2 * 3', '(1 + 2) * 3', '2 ^ 3 ^ 2', '-2^2', '2 ** -1', '0.1 + 0.2', '7 % 3',
        'sqrt(16) + abs(-3)', 'max(1, 5, 3)', '12 × 3 ÷ 4', '1e3 / 8', '.5 * 4', 'round(pi * 100)',
        '1 / 0', '2 +', 'foo', 'sqrt(1, 2)', '2 $ 3', '(1 + 2', '3 4', 'Math.PI', 'constructor',
        'alert(1)', '', '-'.repeat(200) + '1', 'log(0)'];
    return cases.map((text) => {
        try { return [text, evaluate(text)]; } catch (err) { return [text, err.name + ': ' + err.message]; }
    });
}"""


def test_the_calculator_parses_arithmetic_and_refuses_the_rest(tools_context, base_url: str) -> None:
    watched = _open(tools_context, base_url)
    got = dict(watched.page.evaluate(CALCULATOR_TABLE))
    values = {"1 + 2 * 3": 7, "(1 + 2) * 3": 9, "2 ^ 3 ^ 2": 512, "-2^2": -4, "2 ** -1": 0.5}
    values |= {"0.1 + 0.2": 0.3}
    values |= {"7 % 3": 1, "sqrt(16) + abs(-3)": 7, "max(1, 5, 3)": 5, "12 × 3 ÷ 4": 9, "1e3 / 8": 125}
    values |= {".5 * 4": 2, "round(pi * 100)": 314}
    for text, value in values.items():
        assert got[text] == value, (text, got[text])
    errors = {
        "1 / 0": "division by zero at position 3",
        "2 +": "the expression ends too early",
        "foo": 'unknown name "foo" at position 1',
        "sqrt(1, 2)": "sqrt() takes 1 argument, got 2",
        "2 $ 3": 'unexpected "$" at position 3',
        "(1 + 2": 'expected ")" at the end',
        "3 4": 'unexpected "4" at position 3',
        "Math.PI": 'unexpected "." at position 5',
        "constructor": 'unknown name "constructor"',
        "alert(1)": 'unknown function "alert"',
        "": "the expression is empty",
        "-" * 200 + "1": "nested more than 64 deep",
        "log(0)": "not a finite number",
    }
    for text, message in errors.items():
        assert got[text].startswith("CalculatorError: ") and message in got[text], (text, got[text])
    watched.assert_clean()
    watched.page.close()


BAD_CALLS = """async () => {
    const { runToolCall } = await import('./page/demo-tools.js');
    const call = (name, args) =>
        runToolCall({ id: 'call_1', type: 'function', function: { name, arguments: args } });
    return {
        unknown: call('launch_rockets', '{}'),
        notJson: call('calculator', '{"expression": '),
        notObject: call('calculator', '[1, 2]'),
        missing: call('calculator', '{}'),
        calculatorError: call('calculator', '{"expression": "2 * (3"}'),
        units: call('convert_units', '{"value": 1, "from": "kg", "to": "km"}'),
        sum: call('calculator', '{"expression": "2 * (3 + 4)"}'),
        miles: call('convert_units', '{"value": 10, "from": "mi", "to": "km"}'),
        boiling: call('convert_units', '{"value": 100, "from": "C", "to": "F"}'),
        time: call('current_time', ''),
        zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    };
}"""

# A stand-in with the module's chat.completions.create shape: the first reply calls an unknown tool
# and the calculator badly, the second answers. The loop must give the model both errors and go on.
STUB_LOOP = """async () => {
    const { runToolLoop } = await import('./page/tool-loop.js');
    const { DEMO_TOOLS } = await import('./page/demo-tools.js');
    const requests = [];
    const chunk = (delta, finish_reason = null) => ({ choices: [{ index: 0, delta, finish_reason }] });
    const usage = { choices: [], usage: { prompt_tokens: 10, completion_tokens: 3,
        prompt_tokens_details: { cached_tokens: 4 } } };
    const replies = [
        [chunk({ role: 'assistant', content: '' }),
         chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function',
             function: { name: 'nope', arguments: '' } }] }),
         chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function',
             function: { name: 'calculator', arguments: '{"expr' } }] }),
         chunk({ tool_calls: [{ index: 1, function: { arguments: 'ession": "1/0"}' } }] }),
         chunk({}, 'tool_calls'), usage],
        [chunk({ content: 'Both tools failed.' }), chunk({}, 'stop'), usage],
    ];
    const model = { chat: { completions: { create: async (body) => {
        requests.push(JSON.parse(JSON.stringify(body)));
        const chunks = replies[requests.length - 1];
        return (async function* () { yield* chunks; })();
    } } } };
    const messages = [{ role: 'user', content: 'Go' }];
    const turn = await runToolLoop(model, messages, { tools: DEMO_TOOLS, toolChoice: 'required' });
    return { turn, requests };
}"""


def test_bad_calls_give_the_model_an_error_result(tools_context, base_url: str) -> None:
    watched = _open(tools_context, base_url)
    got = watched.page.evaluate(BAD_CALLS)
    for name in ("unknown", "notJson", "notObject", "missing", "calculatorError", "units"):
        assert got[name]["ok"] is False and set(got[name]["value"]) == {"error"}, (name, got[name])
        assert json.loads(got[name]["content"]) == got[name]["value"]
    assert "launch_rockets" in got["unknown"]["value"]["error"]
    assert "not valid JSON" in got["notJson"]["value"]["error"]
    assert 'expected ")"' in got["calculatorError"]["value"]["error"]
    assert "cannot convert mass (kg) to length (km)" in got["units"]["value"]["error"]
    assert got["sum"]["value"] == {"expression": "2 * (3 + 4)", "result": 14}
    assert got["miles"]["value"] == {"value": 16.09344, "unit": "km"}
    assert got["boiling"]["value"] == {"value": 212, "unit": "F"}
    assert got["time"]["ok"] and got["time"]["value"]["time_zone"] == got["zone"]

    stub = watched.page.evaluate(STUB_LOOP)
    turn, requests = stub["turn"], stub["requests"]
    assert [m["role"] for m in turn["messages"]] == ["assistant", "tool", "tool", "assistant"]
    calls = turn["messages"][0]["tool_calls"]
    assert calls[1]["function"]["arguments"] == '{"expression": "1/0"}'  # merged from its pieces
    results = [json.loads(m["content"]) for m in turn["messages"][1:3]]
    assert "unknown tool" in results[0]["error"] and "division by zero" in results[1]["error"]
    assert [m["tool_call_id"] for m in turn["messages"][1:3]] == ["call_a", "call_b"]
    assert [r["tool_choice"] for r in requests] == ["required", "auto"]  # forced only first
    assert requests[1]["messages"][1:] == turn["messages"][:3]
    assert turn["stats"]["text"] == "Both tools failed." and turn["stats"]["stopReason"] == "eos"
    assert turn["stats"]["toolCalls"] == 2 and turn["stats"]["prefilledTokens"] == 12
    watched.assert_clean()
    watched.page.close()


ROUND_CAP = """async () => {
    const { runToolLoop } = await import('./page/tool-loop.js');
    const { DEMO_TOOLS } = await import('./page/demo-tools.js');
    const model = await app.model();
    const turn = await runToolLoop(model, [{ role: 'user', content: 'Convert, again and again.' }], {
        tools: DEMO_TOOLS, toolChoice: { type: 'function', function: { name: 'convert_units' } },
        forcedRounds: 9, maxRounds: 2, request: { temperature: 0, max_tokens: 200 } });
    return turn;
}"""


def test_the_loop_stops_at_its_cap_and_says_so(tools_context, base_url: str) -> None:
    """Every request forced (random weights): the loop ends after maxRounds replies with calls."""
    watched = _open(tools_context, base_url)
    turn = watched.page.evaluate(ROUND_CAP)
    assert [m["role"] for m in turn["messages"]] == ["assistant", "tool", "assistant", "tool"], turn
    stats = turn["stats"]
    assert stats["stopReason"] == "tool_rounds" and stats["rounds"] == 2 and stats["toolCalls"] == 2
    for message in turn["messages"][1::2]:
        result = json.loads(message["content"])  # a conversion, or the error the model is given
        assert set(result) in ({"value", "unit"}, {"error"}), result
    assert stats["usage"][1]["reusedTokens"] > 0  # the second request resumed from the first's state
    watched.assert_clean()
    watched.page.close()


def test_a_forced_call_is_folded_above_the_answer_and_kept_by_a_reload(tools_context, base_url: str) -> None:
    # Sampled (seeded): greedy decoding of these random weights writes no visible text after the call.
    watched = _open(tools_context, base_url, f"{QUERY}&seed=3")
    page = watched.page
    page.click(".settings-panel summary")
    page.fill("#max-new-tokens", "96")  # room for the forced call (the tiny tokenizer's tokens are short)
    expect(page.locator("#demo-tools")).to_be_checked()  # ?tools=1
    stats = _send(page, "What time is it?")
    assert stats["rounds"] == 2 and stats["toolCalls"] == 1, stats
    first, second = stats["usage"]
    assert second["reusedTokens"] >= first["promptTokens"] > 0  # the second resumed from a kept state
    assert stats["stopReason"] in ("eos", "max_new_tokens")
    turn = page.locator(".turn.assistant").last
    call = turn.locator("details.tool-call")
    expect(call).to_have_count(1)
    expect(call).not_to_have_attribute("open", "")  # folded
    expect(call.locator("summary")).to_have_text("Tool call: current_time")
    assert "time_zone" in call.locator(".tool-result").text_content()
    order = turn.evaluate("t => [...t.children].map(c => c.className)")
    assert order.index("tool-calls") < order.index("text markdown")  # the call above the answer
    messages = page.evaluate("app.chat().messages")
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "current_time"
    page.evaluate("document.querySelector('.settings-panel').open = false")
    turn.scroll_into_view_if_needed()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    page.reload()  # the same address: ?tools=1&toolChoice=current_time&seed=3
    page.evaluate("app.chatReady")
    page.evaluate("app.restored()")
    restored = page.evaluate("app.chat()")
    assert restored["messages"] == messages and restored["restoredTokens"] > 0
    call = page.locator(".turn.assistant details.tool-call")
    expect(call).to_have_count(1)
    expect(call.locator("summary")).to_have_text("Tool call: current_time")
    assert "time_zone" in call.locator(".tool-result").text_content()
    page.click(".settings-panel summary")
    page.fill("#max-new-tokens", "96")
    following = _send(page, "And now?")
    assert following["usage"][0]["reusedTokens"] == restored["restoredTokens"]  # only the new turn ran
    roles = [m["role"] for m in page.evaluate("app.chat().messages")]
    assert roles[4:] == ["user", "assistant", "tool", "assistant"]
    watched.assert_clean()
    page.close()
