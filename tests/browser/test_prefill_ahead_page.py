"""The page prefills ahead (after each reply) and while the message is typed, restores a stored chat
in the background, and gives exactly the turns a page without any of it gives: also after a reload
in the middle of background work and a Stop sent while the restore may still run."""

from __future__ import annotations

from tests.browser.pages import READY_TIMEOUT_MS, watch
from tests.browser.test_chat import _settings, chat_url  # noqa: F401  (chat_url: the module's site)

MESSAGES = ["Hello! Who are you today?", "What does json.dumps do with a dict?", "And pathlib.Path.glob?"]
# The background job is idle (done, or pre-empted) and holds its whole target.
SETTLED = """async () => {
  const a = (await app.stats()).ahead;
  return !a.running && a.heldTokens === a.targetTokens;
}"""


def _open(context, url: str, query: str):
    watched = watch(context, url)
    watched.page.goto(f"{url}?backend=wasm&seed=3{query}")
    watched.page.evaluate("app.chatReady")
    _settings(watched.page, 8)
    return watched


def _type_and_send(page, text: str, wait_for_background: bool) -> dict:
    page.click("#prompt")
    page.keyboard.type(text, delay=20)  # input events: the draft is handed over as it is typed
    if wait_for_background:
        page.evaluate("app.drafted()")  # the last draft handed over (throttled by the page)
        page.wait_for_function(SETTLED, timeout=READY_TIMEOUT_MS)
    page.click("#generate")
    page.wait_for_selector("#generate:not([disabled])")
    return page.evaluate("app.lastTurn()")


def test_prefill_ahead_and_typing_change_no_turn_and_save_prefill(browser, chat_url) -> None:  # noqa: F811
    plain_context, ahead_context = browser.new_context(), browser.new_context()
    try:
        plain = _open(plain_context, chat_url, "&prefillAhead=0")
        expected = [_type_and_send(plain.page, text, False) for text in MESSAGES]
        assert plain.page.evaluate("app.stats()")["ahead"]["prefilledTokens"] == 0

        ahead = _open(ahead_context, chat_url, "")
        page = ahead.page
        first, second = (_type_and_send(page, text, True) for text in MESSAGES[:2])
        for turn, reference in zip((first, second), expected, strict=False):
            assert turn["tokens"] == reference["tokens"]
            assert turn["promptTokens"] == reference["promptTokens"]
            assert turn["prefilledTokens"] < reference["prefilledTokens"]  # the draft was prefilled
        assert page.evaluate("app.stats()")["ahead"]["prefilledTokens"] > 0

        # A reload while the next turn's opening is prefilled, then a send and a Stop at once (the
        # restore runs in the background): nothing is lost, and the turn sent again is exact.
        page.reload()
        page.evaluate("app.chatReady")
        _settings(page, 8)
        page.fill("#prompt", MESSAGES[2])
        page.click("#generate")
        page.evaluate("document.getElementById('stop').click()")  # at once: nothing if already done
        page.wait_for_selector("#generate:not([disabled])")
        page.evaluate("app.restored()")
        assert page.locator(".turn.user").count() in (2, 3)
        if page.locator(".turn.user").count() == 3:  # the Stop came after the first token
            page.click("#regenerate")
            page.wait_for_selector("#generate:not([disabled])")
            third = page.evaluate("app.lastTurn()")
        else:
            assert page.input_value("#prompt") == MESSAGES[2]  # the message went back into the box
            page.click("#generate")
            page.wait_for_selector("#generate:not([disabled])")
            third = page.evaluate("app.lastTurn()")
        assert third["tokens"] == expected[2]["tokens"]
        assert page.evaluate("app.chat().restoredTokens") > 0
        plain.assert_clean()
    finally:
        plain_context.close()
        ahead_context.close()
