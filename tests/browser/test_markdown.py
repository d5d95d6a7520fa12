"""Replies as Markdown in the transcript (web/static/page/markdown.js through chat-view.js).

Served bare (the page's own files and a test page, under the site's CSP): no model is needed. A reply
is streamed into an assistant turn piece by piece as the chat does, then finished; the transcript
must hold the right elements, model HTML must stay inert text, and the copy button must copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen35web.web.build import STATIC_DIR
from qwen35web.web.serve import serving
from tests.browser.pages import SCREENSHOT_DIR, WatchedPage, watch

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
TEST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>markdown</title>
<link rel="stylesheet" href="page/style.css"></head>
<body><section id="transcript" class="transcript"></section></body></html>
"""

REPLY = """# Plan

Here is **what to do**, with *care* and `inline code`:

1. Install it
2. Run it
   - with `--fast`
   - or slowly

- a bullet
- another

> A quote.

| name | size | note |
|:-----|-----:|:----:|
| tiny | 3.6M | *trained* |
| 0.8B | 800M | `q4` |

```python
def hello(name):
    return f"hi {name} <b>"
```

See [the docs](https://example.org/docs) or https://example.org/raw.

---
Done."""

HOSTILE = """<img src=x onerror="window.__pwned = 1">
<script>window.__pwned = 2</script>

[click me](javascript:window.__pwned=3) and [data](data:text/html,<b>x</b>) and <https://ok.example/>

| <img src=y onerror=alert(1)> | b |
|---|---|
| <script>x</script> | [z](JavaScript:alert(1)) |

`<iframe src="x">`
"""

# Streams `text` in pieces of `size` characters into a new assistant turn, then finishes it.
STREAM = """async ([text, size, finish]) => {
    const { addAssistantTurn } = await import('./page/chat-view.js');
    const view = addAssistantTurn(document.getElementById('transcript'));
    for (let i = 0; i < text.length; i += size) view.append('text', text.slice(i, i + size));
    if (finish) view.finish({ text, reasoning: '', stopReason: 'eos' });
    window.lastView = view;
    return document.querySelectorAll('.turn.assistant').length - 1;
}"""


@pytest.fixture(scope="module")
def markdown_page(browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WatchedPage]:
    root = tmp_path_factory.mktemp("markdown-site")
    shutil.copytree(STATIC_DIR, root, dirs_exist_ok=True)
    (root / "markdown-test.html").write_text(TEST_PAGE, encoding="utf-8")
    with serving(root) as url:
        context = browser.new_context(viewport={"width": 760, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
        watched = watch(context, url)
        watched.page.on("dialog", lambda dialog: watched.errors.append(f"dialog: {dialog.message}"))
        watched.page.goto(url + "markdown-test.html")
        yield watched
        context.close()


def _turn(page: WatchedPage, text: str, size: int = 7, finish: bool = True):
    index = page.page.evaluate(STREAM, [text, size, finish])
    return page.page.locator(".turn.assistant").nth(index)


def test_each_markdown_construct_renders_as_its_element(markdown_page: WatchedPage) -> None:
    reply = _turn(markdown_page, REPLY).locator(".text")
    assert reply.locator("h1").inner_text() == "Plan"
    assert reply.locator("p strong").inner_text() == "what to do"
    assert reply.locator("p em").first.inner_text() == "care"
    assert reply.locator("p > code").first.inner_text() == "inline code"
    assert reply.locator("ol > li").count() == 2
    assert reply.locator("ol > li").nth(1).locator("ul > li").count() == 2  # nested under "Run it"
    assert reply.locator("ol ul code").first.inner_text() == "--fast"
    assert reply.locator(":scope > ul > li").all_inner_texts() == ["a bullet", "another"]
    assert reply.locator("blockquote p").inner_text() == "A quote."
    table = reply.locator("table")
    assert table.locator("thead th").all_inner_texts() == ["name", "size", "note"]
    assert table.locator("tbody tr").count() == 2
    assert table.locator("tbody tr").first.locator("td").nth(1).get_attribute("class") == "align-right"
    assert table.locator("tbody em").inner_text() == "trained"
    code = reply.locator(".code-block pre > code")
    assert code.get_attribute("class") == "language-python"
    assert code.inner_text() == 'def hello(name):\n    return f"hi {name} <b>"'
    links = reply.locator("a")
    assert links.count() == 2
    assert links.first.get_attribute("href") == "https://example.org/docs"
    assert links.first.get_attribute("rel") == "noopener noreferrer nofollow"
    assert links.nth(1).inner_text() == "https://example.org/raw"  # a bare URL, without its full stop
    assert reply.locator("hr").count() == 1
    fonts = reply.evaluate(
        "el => [el.querySelector('p'), el.querySelector('pre code')].map(n => getComputedStyle(n).fontFamily)"
    )
    assert "mono" not in fonts[0].lower() and "mono" in fonts[1].lower()  # prose proportional, code mono
    markdown_page.assert_clean()


def test_model_html_and_script_links_stay_inert_text(markdown_page: WatchedPage) -> None:
    reply = _turn(markdown_page, HOSTILE, size=3).locator(".text")
    assert reply.locator("img, script, iframe").count() == 0
    hrefs = reply.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://ok.example/"]  # the javascript: and data: links are text
    text = reply.inner_text()
    assert '<img src=x onerror="window.__pwned = 1">' in text
    assert "<script>window.__pwned = 2</script>" in text
    assert "click me (javascript:window.__pwned=3)" in text
    assert reply.locator("table th").first.inner_text() == "<img src=y onerror=alert(1)>"
    assert reply.locator("code").last.inner_text() == '<iframe src="x">'
    assert markdown_page.page.evaluate("window.__pwned") is None
    markdown_page.assert_clean()


def test_streaming_rebuilds_only_the_last_block(markdown_page: WatchedPage) -> None:
    page = markdown_page.page
    index = page.evaluate(STREAM, ["# Title\n\nFirst paragraph.\n\nSecond", 4, False])
    reply = page.locator(".turn.assistant").nth(index).locator(".text")
    reply.evaluate("node => { window.kept = node.firstChild; }")
    page.evaluate("() => { lastView.append('text', ' grows'); lastView.append('text', '\\n\\n- item'); }")
    tags = reply.locator(":scope > *").evaluate_all("nodes => nodes.map(n => n.tagName)")
    assert tags == ["H1", "P", "P", "UL"]
    assert page.evaluate("() => window.kept.isConnected && window.kept.tagName") == "H1"  # never rebuilt
    # An unclosed fence while streaming is already a code block.
    page.evaluate("() => window.lastView.append('text', '\\n\\n```js\\nlet a = 1;')")
    assert reply.locator(".code-block code").inner_text() == "let a = 1;"
    markdown_page.assert_clean()


def test_a_reply_streamed_a_character_at_a_time_ends_as_rendered_whole(markdown_page: WatchedPage) -> None:
    """Rebuilding only changed blocks while streaming leaves the same DOM as rendering the whole reply."""
    page = markdown_page.page
    index = page.evaluate(STREAM, [REPLY + "\n\n" + HOSTILE, 1, False])
    streamed = page.locator(".turn.assistant").nth(index).locator(".text").evaluate("n => n.innerHTML")
    whole = page.evaluate(
        """async (text) => {
        const node = document.createElement('div');
        node.append((await import('./page/markdown.js')).renderMarkdown(text));
        return node.innerHTML;
    }""",
        REPLY + "\n\n" + HOSTILE,
    )
    assert streamed == whole
    markdown_page.assert_clean()


def test_the_copy_button_copies_the_code(markdown_page: WatchedPage) -> None:
    reply = _turn(markdown_page, "Try:\n\n```sh\necho 'a < b' && ls\n```\n").locator(".text")
    button = reply.locator(".code-block button.copy-code")
    # The label the click turns it into (it turns back to "Copy" later, on a timer).
    label = button.evaluate(
        """button => new Promise(resolve => {
        new MutationObserver(() => resolve(button.textContent))
            .observe(button, {childList: true, characterData: true, subtree: true});
        button.click();
    })"""
    )
    assert label == "Copied"
    assert markdown_page.page.evaluate("navigator.clipboard.readText()") == "echo 'a < b' && ls"
    markdown_page.assert_clean()


def test_a_tool_call_is_folded_above_the_answer(markdown_page: WatchedPage) -> None:
    page = markdown_page.page
    index = page.evaluate(STREAM, ["", 1, False])
    page.evaluate(
        """() => {
        lastView.toolCall({ name: 'get_weather', arguments: '{"city": "Paris"}', result: { celsius: 21 } });
        lastView.append('text', 'It is **21 °C** in Paris.');
        lastView.finish({ text: 'It is **21 °C** in Paris.', reasoning: '', stopReason: 'eos' });
    }"""
    )
    turn = page.locator(".turn.assistant").nth(index)
    call = turn.locator("details.tool-call")
    assert call.locator("summary").inner_text() == "Tool call: get_weather"
    assert not call.evaluate("d => d.open")
    call.locator("summary").click()
    assert call.locator(".tool-arguments").inner_text() == '{\n  "city": "Paris"\n}'
    assert call.locator(".tool-result").inner_text() == '{\n  "celsius": 21\n}'
    shown = "nodes => nodes.filter(n => !n.hidden).map(n => n.className)"
    order = turn.locator(":scope > *").evaluate_all(shown)
    assert order.index("tool-calls") < order.index("text markdown")
    assert turn.locator(".text strong").inner_text() == "21 °C"
    markdown_page.assert_clean()


def test_screenshot_of_a_markdown_reply(markdown_page: WatchedPage) -> None:
    """docs/markdown.png: a reply with reasoning folded above it (written to build/screenshots)."""
    page = markdown_page.page
    page.evaluate("() => document.getElementById('transcript').replaceChildren()")
    page.evaluate(
        """async ([text]) => {
        const { addAssistantTurn, addUserTurn } = await import('./page/chat-view.js');
        const transcript = document.getElementById('transcript');
        addUserTurn(transcript, 'How do I time a Python function?');
        const view = addAssistantTurn(transcript);
        const reasoning = 'The user wants timing. timeit is the standard tool.';
        view.append('reasoning', reasoning);
        view.finish({ text, reasoning, stopReason: 'eos' });
    }""",
        [SCREENSHOT_REPLY],
    )
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.locator("#transcript").screenshot(path=str(SCREENSHOT_DIR / "markdown.png"))
    assert (SCREENSHOT_DIR / "markdown.png").stat().st_size > 0
    markdown_page.assert_clean()


SCREENSHOT_REPLY = """## Timing a function

Use **`timeit`** from the standard library: it runs the code *many times* and reports the total.

```python
import timeit

def work():
    return sum(i * i for i in range(1000))

print(timeit.timeit(work, number=10_000))
```

| tool | best for | overhead |
|:-----|:---------|---------:|
| `timeit` | small snippets | low |
| `cProfile` | whole programs | medium |

1. Call it with `number=` large enough to run for about a second.
2. Compare the **minimum** of several repeats (`timeit.repeat`).

More in [the Python docs](https://docs.python.org/3/library/timeit.html)."""
