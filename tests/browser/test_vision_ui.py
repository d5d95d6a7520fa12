"""The page's chat with images, as a person uses it: a bad file is refused with one sentence and the
typed message stays; a picture attached with the file picker goes with the message, shows as a
thumbnail, and the reply's status says when the vision graph runs; a reload brings the chat back with
its thumbnail, and the next turn continues from the restored state without running the vision graph.
The screenshot (build/screenshots/vision.png) is the one docs/vision.png shows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.pages import READY_TIMEOUT_MS, SCREENSHOT_DIR, WatchedPage, watch

pytestmark = pytest.mark.browser

QUESTION = "What is in this picture?"
# Records every status line a reply shows (they last only while the vision graph runs).
WATCH_STATUS = """() => {
    const lines = window.statusLines = [];
    const options = { subtree: true, childList: true, characterData: true };
    new MutationObserver(() => {
        for (const node of document.querySelectorAll('.turn-status')) {
            const text = node.textContent;
            if (text && lines[lines.length - 1] !== text) lines.push(text);
        }
    }).observe(document.getElementById('transcript'), options);
}"""


@pytest.fixture(scope="module")
def chat_page(browser, vl_site) -> Iterator[WatchedPage]:
    """The page on wasm in a context of its own (its IndexedDB keeps the chat across the reload)."""
    url, _, _ = vl_site
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    context.set_default_timeout(READY_TIMEOUT_MS)
    watched = watch(context, url)
    watched.page.goto(f"{url}?backend=wasm")
    watched.page.evaluate("window.app.chatReady")
    yield watched
    context.close()


def test_the_offline_shell_holds_the_image_code(chat_page: WatchedPage) -> None:
    """web/shell.py lists every page file: the image code is cached for offline use too."""
    worker = chat_page.page.evaluate("async () => (await fetch('sw.js')).text()")
    for name in ("worker/images.js", "page/attachments.js"):
        assert f'"{name}"' in worker, name


def _wait_for_reply(page) -> dict:
    expect(page.locator(".turn.assistant.streaming")).to_have_count(0, timeout=READY_TIMEOUT_MS)
    expect(page.locator("#generate")).to_be_enabled()
    return page.evaluate("window.app.lastTurn()")


def test_bad_file_is_refused_and_the_message_stays(chat_page: WatchedPage, vl_site) -> None:
    _, _, images = vl_site
    page = chat_page.page
    expect(page.locator("#attach")).to_be_visible()
    page.fill("#prompt", QUESTION)
    page.set_input_files("#attach-input", str(images["not-an-image.png"]))
    expect(page.locator("#error")).to_contain_text("not-an-image.png is not an image")
    assert "\n" not in page.locator("#error").inner_text()
    assert page.input_value("#prompt") == QUESTION
    expect(page.locator("#attachments")).to_be_hidden()
    expect(page.locator("#transcript .turn")).to_have_count(0)


# A File from the site's test image, handed to the page the way a drop or a paste hands it.
DROP_AND_PASTE = """async () => {
    const blob = await (await fetch('test-images/scene.png')).blob();
    const transfer = () => {
        const data = new DataTransfer();
        data.items.add(new File([blob], 'scene.png', { type: 'image/png' }));
        return data;
    };
    const form = document.getElementById('prompt-form');
    const drop = new DragEvent('drop', { dataTransfer: transfer(), bubbles: true, cancelable: true });
    form.dispatchEvent(drop);
    const paste = new ClipboardEvent('paste', { clipboardData: transfer(), bubbles: true, cancelable: true });
    document.getElementById('prompt').dispatchEvent(paste);
    return [drop.defaultPrevented, paste.defaultPrevented];
}"""


def test_drop_and_paste_attach_images(chat_page: WatchedPage) -> None:
    page = chat_page.page
    handled = page.evaluate(DROP_AND_PASTE)
    assert handled == [True, True]  # the page took both (a file drop does not open the file)
    expect(page.locator("#attachments canvas.thumbnail")).to_have_count(2)
    for _ in range(2):  # removed again: the next test starts with none attached
        page.locator("#attachments .remove-attachment").first.click()
    expect(page.locator("#attachments")).to_be_hidden()
    chat_page.assert_clean()


def test_attached_picture_goes_with_the_message(chat_page: WatchedPage, vl_site) -> None:
    _, _, images = vl_site
    page = chat_page.page
    page.evaluate(WATCH_STATUS)
    page.set_input_files("#attach-input", str(images["scene.png"]))
    expect(page.locator("#attachments canvas.thumbnail")).to_have_count(1)
    page.fill("#prompt", QUESTION)
    page.click("#generate")
    stats = _wait_for_reply(page)
    assert stats["imagesEncoded"] == 1 and stats["tokens"]
    user_turn = page.locator(".turn.user").first
    expect(user_turn.locator("canvas.thumbnail[data-drawn]")).to_have_count(1)
    expect(user_turn.locator(".text")).to_have_text(QUESTION)
    expect(page.locator("#attachments")).to_be_hidden()  # sent: the list is empty again
    lines = page.evaluate("window.statusLines")
    assert lines and lines[0] == "Looking at image 1…", lines
    expect(page.locator(".turn.assistant .turn-stats").first).to_contain_text("1 image encoded")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "vision.png"), full_page=True)
    chat_page.assert_clean()


def test_reload_shows_the_image_and_the_next_turn_reuses_its_state(chat_page: WatchedPage) -> None:
    page = chat_page.page
    page.reload()
    page.evaluate("window.app.chatReady")
    page.evaluate("window.app.restored()")  # the saved state loads in the background
    chat = page.evaluate("window.app.chat()")
    assert chat["restoredTokens"] > 0
    expect(page.locator(".turn.user canvas.thumbnail[data-drawn]")).to_have_count(1)
    page.fill("#prompt", "And the colours?")
    page.click("#generate")
    stats = _wait_for_reply(page)
    assert stats["imagesEncoded"] == 0
    assert stats["reusedTokens"] >= chat["restoredTokens"] - 1
    assert len(page.evaluate("window.app.chat()")["messages"]) == 4
    chat_page.assert_clean()
