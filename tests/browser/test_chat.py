"""The page as a chat, as a person uses it: three turns with the reasoning shown apart, a reload that
continues without prefilling the history, regenerate, stored chats deleted, a full context said.

The site's bundle is the tiny random one with a Qwen-like chat template: the generation prompt opens
`<think>` (or closes it at once when thinking is off) and past replies are re-rendered stripped.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving
from tests.browser.pages import MODEL_NAME, READY_TIMEOUT_MS, SCREENSHOT_DIR, WatchedPage, watch

pytestmark = pytest.mark.browser

QWEN_LIKE_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|im_start|>assistant\n{{ message['content'] | trim }}<|im_end|>\n"
    "{% else %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)
QUESTIONS = ["Hello! Who are you?", "What does json.dumps do?", "And pathlib.Path?"]


@pytest.fixture(scope="module")
def chat_url(tmp_path_factory: pytest.TempPathFactory, export_bundle) -> Iterator[str]:
    bundle = tmp_path_factory.mktemp("chat-bundle") / "bundle"
    shutil.copytree(export_bundle("text", "fused"), bundle)
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["chat_template"] = QWEN_LIKE_TEMPLATE
    manifest["thinking_default"] = (
        True  # what the export records for this template (it thinks unless told not to)
    )
    manifest_path.write_text(json.dumps(manifest, indent=2))
    site = tmp_path_factory.mktemp("chat-web") / "site"
    build_site(SiteSpec(site, [(MODEL_NAME, bundle)], {MODEL_NAME: "Seeded tiny random checkpoint (test)."}))
    with serving(site) as url:
        yield url


@pytest.fixture(scope="module")
def chat_context(browser) -> Iterator:
    """One browser context for the module: its IndexedDB holds the stored chats across reloads."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(READY_TIMEOUT_MS)
    yield context
    context.close()


# The text a reply's Markdown shows (the answer is rendered: markdown.js, tested in test_markdown.py).
MARKDOWN_TEXT = """async (text) => {
    const node = document.createElement('div');
    node.append((await import('./page/markdown.js')).renderMarkdown(text));
    return node.textContent;
}"""


def _open(context, url: str, query: str = "") -> WatchedPage:
    watched = watch(context, url)
    watched.page.goto(f"{url}?backend=wasm{query}")
    watched.page.evaluate("app.chatReady")
    return watched


def _send(page, text: str) -> dict:
    page.fill("#prompt", text)
    page.click("#generate")
    page.wait_for_selector("#generate:not([disabled])")
    return page.evaluate("app.lastTurn()")


def _settings(page, tokens: int) -> None:
    page.click(".settings-panel summary")
    page.fill("#max-new-tokens", str(tokens))
    page.fill("#temperature", "1")  # greedy, the random model repeats one byte that never decodes


def test_three_turns_with_the_reasoning_apart(chat_context, chat_url: str) -> None:
    watched = _open(chat_context, chat_url)
    page = watched.page
    _settings(page, 10)
    results = [_send(page, QUESTIONS[0]), _send(page, QUESTIONS[1])]
    page.uncheck("#thinking")  # the template closes the reasoning at once: the reply is an answer
    results.append(_send(page, QUESTIONS[2]))

    assert page.locator(".turn.user").count() == 3 and page.locator(".turn.assistant").count() == 3
    for index, result in enumerate(results[:2]):
        turn = page.locator(".turn.assistant").nth(index)
        assert result["reasoning"] and result["text"] == "", result  # the random model never closes <think>
        assert turn.locator("details.reasoning").is_visible()
        assert not turn.locator("details.reasoning").evaluate("d => d.open")  # collapsed
        assert turn.locator(".reasoning-text").text_content() == result["reasoning"]
        assert "No answer yet" in turn.locator(".text").inner_text()
    third = page.locator(".turn.assistant").nth(2)
    assert results[2]["reasoning"] == "" and results[2]["text"]
    assert third.locator("details.reasoning").is_hidden()
    assert third.locator(".text").text_content() == page.evaluate(MARKDOWN_TEXT, results[2]["text"])
    for result in results[1:]:
        assert result["reusedTokens"] > 0 and result["prefilledTokens"] < result["promptTokens"]
    assert "first token" in third.locator(".turn-stats").inner_text()
    used = results[2]["promptTokens"] + len(results[2]["tokens"])
    total = results[2]["contextTokens"]
    assert page.locator("#context-used").inner_text() == f"Context: {used} / {total} tokens"
    assert page.locator("#chat-list li").count() == 1

    page.locator(".turn.assistant details.reasoning").first.evaluate("d => (d.open = true)")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "chat.png"), full_page=True)
    watched.assert_clean()
    page.close()


def test_a_reload_continues_without_prefilling_the_history(chat_context, chat_url: str) -> None:
    watched = _open(chat_context, chat_url)
    page = watched.page
    assert page.locator(".turn.user").count() == 3 and page.locator(".turn.assistant").count() == 3
    page.evaluate("app.restored()")  # the state loads in the background; the page was usable before
    restored = page.evaluate("app.chat().restoredTokens")
    assert restored > 0
    _settings(page, 6)
    result = _send(page, "One more question.")
    assert result["reusedTokens"] >= restored  # and what was prefilled ahead since
    assert result["prefilledTokens"] < result["promptTokens"] / 2

    # Regenerate: the same prompt again, resumed from the state kept before the reply.
    before = page.locator(".turn.assistant").count()
    page.click("#regenerate")
    page.wait_for_selector("#generate:not([disabled])")
    again = page.evaluate("app.lastTurn()")
    assert page.locator(".turn.assistant").count() == before
    assert again["promptTokens"] == result["promptTokens"]
    assert again["prefilledTokens"] <= result["prefilledTokens"] and again["reusedTokens"] > restored
    assert len(page.evaluate("app.chat().messages")) == 8
    watched.assert_clean()
    page.close()


def test_new_chat_and_delete_a_stored_one(chat_context, chat_url: str) -> None:
    watched = _open(chat_context, chat_url)
    page = watched.page
    _settings(page, 4)
    page.click("#new-chat")
    assert page.locator(".turn").count() == 0
    _send(page, "A second chat")
    expect(page.locator("#chat-list li")).to_have_count(2)
    expect(page.locator("#chat-storage")).to_contain_text("2 stored chats")
    page.locator("#chat-list li:not(.current) .delete-chat").click()
    expect(page.locator("#chat-list li")).to_have_count(1)
    expect(page.locator("#chat-storage")).to_contain_text("1 stored chat:")
    page.locator("#chat-list li.current .delete-chat").click()  # the open one: a new chat starts
    expect(page.locator("#chat-list li")).to_have_count(0)
    assert page.locator(".turn").count() == 0
    watched.assert_clean()
    page.close()


def test_a_full_context_is_said_and_a_new_chat_offered(browser, chat_url: str) -> None:
    context = browser.new_context()
    context.set_default_timeout(READY_TIMEOUT_MS)
    watched = _open(context, chat_url, "&maxContext=96")
    page = watched.page
    _settings(page, 16)
    message = "Tell me everything about it."
    for _ in range(8):
        _send(page, message)
        if page.locator("#context-full").is_visible():
            break
    expect(page.locator("#context-full")).to_be_visible()
    expect(page.locator("#context-full-text")).to_contain_text("full")
    if page.input_value("#prompt"):  # refused before it started: the message is kept
        assert page.input_value("#prompt") == message
    page.click("#context-new-chat")
    expect(page.locator("#context-full")).to_be_hidden()
    assert page.locator(".turn").count() == 0
    watched.assert_clean()
    context.close()


def _fill_until_refused(page, message: str) -> None:
    """Send `message` until the full context refuses it (it stays in the box, the banner says why)."""
    for _ in range(12):
        _send(page, message)
        if page.input_value("#prompt"):
            break
    expect(page.locator("#context-full")).to_be_visible()
    assert page.input_value("#prompt") == message


def test_a_full_chat_can_go_on_without_its_oldest_turns(browser, chat_url: str) -> None:
    context = browser.new_context()
    context.set_default_timeout(READY_TIMEOUT_MS)
    watched = _open(context, chat_url, "&maxContext=112&seed=3&minNewTokens=8")
    page = watched.page
    _settings(page, 8)
    page.uncheck("#thinking")  # answers, kept in the history: the context fills turn by turn
    message = "Tell me everything about it."
    _fill_until_refused(page, message)
    before = page.evaluate("app.chat().messages")
    previous = page.evaluate("app.lastTurn()")  # the last turn that fitted
    expect(page.locator("#context-drop-send")).to_be_visible()

    page.click("#context-drop-send")
    page.wait_for_selector("#generate:not([disabled])")
    result = page.evaluate("app.lastTurn()")
    assert result["droppedTurns"] >= 1 and result["droppedMessages"] == 2 * result["droppedTurns"]
    # The kept states run through the dropped turns: the rest is read again (the first kept message
    # repeats an earlier one word for word, so a few tokens may still be reused).
    assert result["reusedTokens"] < previous["promptTokens"] - 8
    assert result["reusedTokens"] + result["prefilledTokens"] == result["promptTokens"]
    assert result["promptTokens"] + 8 < 112
    expect(page.locator("#context-full")).to_be_hidden()
    marker = page.locator(".context-drop")
    dropped = result["droppedTurns"]
    turns_text = "oldest turn" if dropped == 1 else f"{dropped} oldest turns"
    expect(marker).to_contain_text(f"Dropped the {turns_text} to fit")
    expect(marker).to_contain_text("the model re-read the rest")
    # Nothing is lost: every turn stays in the transcript and the chat; the dropped ones are dimmed.
    chat = page.evaluate("app.chat()")
    assert chat["messages"][: len(before)] == before and len(chat["messages"]) == len(before) + 2
    assert chat["contextStart"] == result["droppedMessages"]
    turns = page.locator(".turn")
    assert turns.count() == len(chat["messages"])
    assert page.locator(".turn.dropped").count() == result["droppedMessages"]
    assert "dropped" not in (turns.nth(result["droppedMessages"]).get_attribute("class") or "")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "chat-dropped.png"), full_page=True)

    # The stored chat keeps them too, and where the model's part starts: a reload shows both.
    page.reload()
    page.evaluate("app.chatReady")
    assert page.locator(".turn").count() == len(chat["messages"])
    assert page.locator(".turn.dropped").count() == result["droppedMessages"]
    expect(page.locator(".context-drop")).to_contain_text("no longer sees them")
    page.evaluate("app.restored()")  # the saved state loads in the background
    assert page.evaluate("app.chat().restoredTokens") > 0
    watched.assert_clean()
    context.close()
