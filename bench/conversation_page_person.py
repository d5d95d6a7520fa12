"""bench.conversation_page with a simulated person: prefill ahead and typing off vs on, in one run.

    python -m bench.conversation_page_person [--model 0.8b|tiny] [--threads 1,2] [--turns 20]
                                             [--type-cps 5] [--read-cps 25]

Per thread count and setting (`?prefillAhead=0`, then on) a fresh browser context opens the demo page
(wasm, `&seed=1&minNewTokens=64`, as bench.conversation_page) and a person holds the conversation
through the UI with bench/conversation.py's PERSON_MESSAGES (29-30 tokens each). On: the person
reads each reply (its characters at --read-cps), types the next message key by key at --type-cps
(the page hands the draft to the model as it is typed, throttled), presses Send. Off: no background
work happens, so reading and typing would change nothing: each message is put in the box and sent at
once. Per turn: the page's time to first token (from the call: the wait for a background chunk,
rendering and tokenising included) and its parts, tokens reused / prefilled after Send, the 1-minute
load average. After the last turn the page is reloaded: the time until it is usable (the stored chat
shown) and until its state is restored in the background, and the next turn's time to first token.

Writes bench/results/conversation-page-person.json and conversation-page-person.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.conversation import PERSON_MESSAGES, REPLY_TOKENS
from bench.conversation_page import MODEL, RESULTS, TIMEOUT_MS, WORK, real_vocab_bundle
from bench.conversation_person import summary
from bench.page_harness import bundle_for
from devtools.chromium import CHROMIUM, OFFLINE_FLAGS
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving

log = logging.getLogger("bench.conversation_page_person")
VOCAB = {
    "0.8b": "0.8B shape, random weights, the q8 wasm bundle, Qwen3.5's real vocabulary",
    "tiny": "the seeded test checkpoint, its own tokenizer",
}


def _settings(page: Any) -> None:
    page.click(".settings-panel summary")
    page.fill("#max-new-tokens", str(REPLY_TOKENS))
    page.fill("#temperature", "1")


def _turn(page: Any, text: str, args: argparse.Namespace, typed: bool = True) -> dict[str, Any]:
    last = page.evaluate("app.lastTurn()")
    if last and typed:  # the person reads the reply before typing
        page.wait_for_timeout(1000 * len(last["reasoning"] + last["text"]) / args.read_cps)
    if typed:
        page.click("#prompt")
        page.keyboard.type(text, delay=1000 / args.type_cps)
    else:  # nothing runs in the background: the message goes at once
        page.fill("#prompt", text)
    page.click("#generate")
    page.wait_for_selector("#generate:not([disabled])")
    if page.locator("#error").is_visible():
        raise RuntimeError(f"the page failed: {page.locator('#error').inner_text()}")
    stats = page.evaluate("app.lastTurn()")
    return {
        "message_tokens": len(page.evaluate("t => app.tokenize(t)", text)),
        "prompt_tokens": stats["promptTokens"],
        "reused_tokens": stats["reusedTokens"],
        "prefilled_tokens": stats["prefilledTokens"],
        "first_token_ms": round(stats["firstTokenMs"], 1),
        # its parts: rendering + tokenising, the wait for a background chunk, the prefill (then the sampler)
        "render_ms": round(stats.get("renderMs", 0.0), 1),
        "waited_ms": round(stats.get("waitedMs", 0.0), 1),
        "prefill_ms": round(stats["prefillMs"], 1),
        "background_tokens": page.evaluate("app.stats()")["ahead"]["prefilledTokens"],
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def _reload(page: Any, args: argparse.Namespace, typed: bool) -> dict[str, Any]:
    started = time.perf_counter()
    page.reload()
    page.evaluate("app.chatReady")
    usable_s = time.perf_counter() - started
    _settings(page)
    page.evaluate("app.restored()")
    restored_s = time.perf_counter() - started
    chat = page.evaluate("app.chat()")
    after = _turn(page, "Thank you. One more question: what does enumerate return?", args, typed)
    return {
        "usable_s": round(usable_s, 2),
        "restored_s": round(restored_s, 2),
        "open": chat["timings"].get("open"),
        "restored_tokens": chat["restoredTokens"],
        "turn_after_reload": after,
    }


def _run(browser: Any, url: str, threads: int, ahead: bool, args: argparse.Namespace) -> dict[str, Any]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        query = f"?backend=wasm&threads={threads}&seed=1&minNewTokens={REPLY_TOKENS}"
        page.goto(f"{url}{query}&prefillAhead={int(ahead)}")
        page.evaluate("app.chatReady")
        _settings(page)
        rows = []
        for turn in range(args.turns):
            message = PERSON_MESSAGES[turn % len(PERSON_MESSAGES)]
            row = _turn(page, message, args, typed=ahead) | {"turn": turn + 1}
            log.info("threads=%d prefillAhead=%d %s", threads, ahead, row)
            rows.append(row)
            partial = WORK / "person-partial.json"  # a later failure keeps what was measured
            partial.write_text(json.dumps({"threads": threads, "ahead": ahead, "turns": rows}) + "\n")
        return {"turns": rows, "reload": _reload(page, args, ahead)}
    finally:
        context.close()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    bundle = bundle_for(args.model)
    if args.model != "tiny":  # the tiny bundle keeps its own small tokenizer (its vocabulary is 512)
        bundle = real_vocab_bundle(bundle, WORK / f"bundle-{args.model}")
    site = WORK / f"site-{args.model}"
    build_site(SiteSpec(site, [(MODEL, bundle)], {MODEL: "bench.conversation_page_person"}))
    with serving(site) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS, headless=True)
        try:
            return {
                str(threads): {
                    setting: _run(browser, url, threads, setting == "on", args) for setting in ("off", "on")
                }
                for threads in args.threads
            }
        finally:
            browser.close()


def _thread_lines(threads: str, run: dict[str, Any]) -> list[str]:
    off, on = run["off"]["turns"], run["on"]["turns"]
    lines = [
        f"## {threads} thread(s)",
        "",
        "| turn | message tokens | prompt tokens | off: prefilled / first token (s) | on: prefilled / first "
        "token (s) | on: render / wait / prefill (ms) | off / on | load avg (off / on) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a, b in zip(off, on, strict=True):
        lines.append(
            f"| {a['turn']} | {a['message_tokens']} | {b['prompt_tokens']} | {a['prefilled_tokens']} / "
            f"{a['first_token_ms'] / 1000:.2f} | {b['prefilled_tokens']} / "
            f"{b['first_token_ms'] / 1000:.2f} | "
            f"{b['render_ms']:.0f} / {b['waited_ms']:.0f} / {b['prefill_ms']:.0f} | "
            f"{a['first_token_ms'] / b['first_token_ms']:.1f}× | {a['load_average_1min']} / "
            f"{b['load_average_1min']} |"
        )
    f = summary(off, on)
    lines += [
        "",
        f"- On: slowest turn **{f['slowest_on_s']:.2f} s** to the first token; turn {len(on)} / turn 1: "
        f"**{f['last_over_first_on']:.2f}×** (off: {f['last_over_first_off']:.2f}×). Off / on per turn: "
        f"{f['off_over_on_min']:.1f}–{f['off_over_on_max']:.1f}× (median {f['off_over_on_median']:.1f}×).",
    ]
    for setting in ("off", "on"):
        reload = run[setting]["reload"]
        after = reload["turn_after_reload"]
        lines.append(
            f"- Reload ({setting}): usable after {reload['usable_s']:.2f} s (page and model included), "
            f"the state of {reload['restored_tokens']} tokens restored in the background by "
            f"{reload['restored_s']:.2f} s (page timings: {_timings(reload['open'])}); the next turn: "
            f"{after['prefilled_tokens']} prefilled, first token {after['first_token_ms'] / 1000:.2f} s."
        )
    return [*lines, ""]


def _timings(opened: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in opened.items())


def write_report(data: dict[str, Any], out: Path) -> None:
    lines = [
        "# The page with a simulated person: Send to first token, prefill ahead and typing off vs on",
        "",
        f"Headless Chromium, wasm, model {data['model']} ({VOCAB[data['model']]}); replies of {REPLY_TOKENS} "
        f"tokens. On: each reply read at {data['read_cps']} characters/s, each message typed at "
        f"{data['type_cps']} characters/s, Send pressed when typed. Off: no background work, so each "
        "message is sent at once (no reading or typing time). 1-minute load average before: "
        f"{data['load_average']} (2 cores shared with other engineers' work: absolute seconds are noisy, "
        f"the ratios less so). Command: `{data['command']}`.",
        "",
    ]
    for threads, run in data["runs"].items():
        lines += _thread_lines(threads, run)
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0]
    prog = "python -m bench.conversation_page_person"
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--model", default="0.8b", choices=["0.8b", "tiny"])
    parser.add_argument("--threads", default="1", help="thread counts, e.g. 1,2")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--type-cps", type=float, default=5.0)
    parser.add_argument("--read-cps", type=float, default=25.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    given = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load = round(os.getloadavg()[0], 2)
    data = {
        "runs": measure(args),
        "model": args.model,
        "threads": args.threads,
        "type_cps": args.type_cps,
        "read_cps": args.read_cps,
        "load_average": load,
        "command": " ".join(["python -m bench.conversation_page_person", *given]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conversation-page-person.json").write_text(json.dumps(data, indent=2) + "\n")
    write_report(data, args.out / "conversation-page-person.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
