"""bench/conversation.py's scripted conversation in the real page: Chromium, wasm, the 0.8B q8 bundle.

    python -m bench.conversation_page [--threads 1,2] [--long-history 2000] [--long-threads 1,2]

Per thread count a fresh browser context opens the demo page (`?backend=wasm&threads=N`, served
cross-origin isolated, `&seed=1&minNewTokens=64` so every reply is 64 sampled tokens) and holds the
conversation through its UI as a person would: the same system-less chat of bench/conversation.py's
user messages, replies of 64 tokens at temperature 1, each finished turn saved by the page (the state
serialised in the worker, then written to IndexedDB). Per turn: the page's time to first token (from
the call, rendering included), reusedTokens / prefilledTokens, the kept states (app.stats()), the
save's two parts. For the --long-threads counts the conversation goes on (cycling the messages) until
a prompt passes --long-history tokens; then the page is reloaded (it reads the stored chat and restores
its state: both timed), one more turn shows the reload resumes without prefilling the history, and
the long turn's prompt is prefilled from nothing (app.generate; no kept state covers it) to compare.

Random weights write random ids, which the bundle's small test tokenizer cannot spell, so — as in
bench/conversation.py — the page gets Qwen3.5's real vocabulary: a copy of the bundle (weights hard-
linked) whose tokenizer.json and manifest entry are the real tokenizer's.

Writes bench/results/conversation-page.json and conversation-page.md.

    python -m bench.conversation_page --restore-only [--long-history 2000] [--threads 1] [--reloads 3]

times only the restore of a saved conversation: one turn whose message brings the prompt to
--long-history tokens (the page saves the state its next turn resumes from), then --reloads reloads,
each timed by the page (IndexedDB read, then the restore in the worker: `app.restored()`). Writes
bench/results/conversation-page-restore.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.conversation import REPLY_TOKENS, USER_MESSAGES
from bench.page_harness import bundle_for, prompt_of
from devtools.chromium import CHROMIUM, OFFLINE_FLAGS
from qwen35web.runtime.bundle_format import MANIFEST, TOKENIZER_FILE
from qwen35web.runtime.prefix_cache import DEFAULT_BUDGET_BYTES
from qwen35web.web.build import SiteSpec, build_site
from qwen35web.web.serve import serving

log = logging.getLogger("bench.conversation_page")

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "conversation-page"
RESULTS = REPO / "bench" / "results"
MODEL = "qwen3_5-0.8b-random"
TIMEOUT_MS = 900_000
RELOAD_KEYS = ("reload_s", "restored_tokens", "open", "turn_after_reload", "refill")
TWO_THREAD_LONG_BUDGET_S = 15 * 60  # the 2-thread long run starts only while the bench is under this


def real_vocab_bundle(source: Path, target: Path) -> Path:
    """`source` with Qwen3.5's real tokenizer.json (weights hard-linked, the manifest entry rewritten)."""
    from devtools.real_vocab import real_tokenizer_json

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    manifest = json.loads((source / MANIFEST).read_text())
    for name in manifest["files"]:
        if name != TOKENIZER_FILE:
            os.link(source / name, target / name)
    tokenizer = Path(real_tokenizer_json()).read_bytes()
    (target / TOKENIZER_FILE).write_bytes(tokenizer)
    digest = hashlib.sha256(tokenizer).hexdigest()
    manifest["files"][TOKENIZER_FILE] = {"size": len(tokenizer), "sha256": digest}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return target


def _log_page_error(message: Any) -> None:
    if message.type == "error":
        log.warning("page console: %s", message.text)


@contextmanager
def page_at(browser: Any, url: str, threads: int) -> Iterator[Any]:
    """The chat page in a fresh context (its own IndexedDB and weight cache), on wasm with `threads`."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", _log_page_error)
    started = time.perf_counter()
    page.goto(f"{url}?backend=wasm&threads={threads}&seed=1&minNewTokens={REPLY_TOKENS}")
    page.evaluate("app.chatReady")
    info = page.evaluate("app.info()")
    if info["threads"] != threads or (threads > 1 and not info["crossOriginIsolated"]):
        reason = info["threadsReason"]
        raise RuntimeError(f"asked for {threads} threads, the page runs {info['threads']} ({reason})")
    log.info("%d thread(s): ready in %.1f s", threads, time.perf_counter() - started)
    page.click(".settings-panel summary")
    page.fill("#max-new-tokens", str(REPLY_TOKENS))
    page.fill("#temperature", "1")  # as bench/conversation.py
    try:
        yield page
    finally:
        context.close()


def send(page: Any, text: str) -> dict[str, Any]:
    """One turn through the UI; the turn's stats, the kept states, the page's save timings."""
    page.fill("#prompt", text)
    page.click("#generate")
    page.wait_for_selector("#generate:not([disabled])")
    if page.locator("#error").is_visible():
        raise RuntimeError(f"the page failed: {page.locator('#error').inner_text()}")
    stats = page.evaluate("app.lastTurn()")
    kept = page.evaluate("app.stats()")
    chat = page.evaluate("app.chat()")
    return {
        "prompt_tokens": stats["promptTokens"],
        "reused_tokens": stats["reusedTokens"],
        "prefilled_tokens": stats["prefilledTokens"],
        "first_token_ms": round(stats["firstTokenMs"], 1),
        "prefill_ms": round(stats["prefillMs"], 1),
        "decode_tokens_per_s": round(stats["decodeTokensPerSecond"], 2),
        "reply_tokens": len(stats["tokens"]),
        "kept_bytes": kept["keptBytes"],
        "kept_states": kept["keptStates"],
        "save": chat["timings"].get("save"),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def converse(page: Any, turns: int, until_prompt: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while len(rows) < turns or rows[-1]["prompt_tokens"] < until_prompt:
        row = send(page, USER_MESSAGES[len(rows) % len(USER_MESSAGES)])
        row["turn"] = len(rows) + 1
        rows.append(row)
        log.info("turn %d: %s", row["turn"], row)
    return rows


def reload_and_refill(page: Any, last_prompt_messages: list[dict]) -> dict[str, Any]:
    """Reload (read + restore timed by the page), one more turn, then the long prompt from nothing."""
    started = time.perf_counter()
    page.reload()
    page.evaluate("app.chatReady")
    reload_s = time.perf_counter() - started
    chat = page.evaluate("app.chat()")
    page.click(".settings-panel summary")
    page.fill("#max-new-tokens", str(REPLY_TOKENS))
    page.fill("#temperature", "1")
    after = send(page, "Thank you. One more question: what does enumerate return?")
    request = {"messages": last_prompt_messages, "chat": True, "maxNewTokens": 1, "greedy": True}
    refill = page.evaluate("r => app.generate(r)", request)
    return {
        "reload_s": round(reload_s, 1),
        "restored_tokens": chat["restoredTokens"],
        "open": chat["timings"].get("open"),
        "turn_after_reload": after,
        "refill": {
            "prompt_tokens": refill["promptTokens"],
            "reused_tokens": refill["reusedTokens"],
            "first_token_ms": round(refill["firstTokenMs"], 1),
            "prefill_ms": round(refill["prefillMs"], 1),
        },
    }


def run_threads(browser: Any, url: str, threads: int, turns: int, long_history: int) -> dict[str, Any]:
    with page_at(browser, url, threads) as page:
        load = page.evaluate("app.info().timings")
        rows = converse(page, turns, long_history)
        result: dict[str, Any] = {"threads": threads, "load_ms": load, "turns": rows}
        messages = page.evaluate("app.chat().messages")
        result |= reload_and_refill(page, messages[:-1])  # the last turn's prompt: all but its reply
        log.info("%d thread(s), after the conversation: %s", threads, {k: result[k] for k in RELOAD_KEYS})
    return result


def measure_restore(browser: Any, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """One long turn, saved; then each reload's IndexedDB read and background restore, as the page
    times them (chat.timings.open), and the turn after the last reload."""
    threads = args.threads[0]
    with page_at(browser, url, threads) as page:
        message = prompt_of(page, args.long_history - 16, "Read this and say what it is about. ")
        turn = send(page, message)
        log.info("the long turn: %s", turn)
        reloads = []
        for _ in range(args.reloads):
            page.reload()
            page.evaluate("app.chatReady")
            page.evaluate("app.restored()")
            chat = page.evaluate("app.chat()")
            opened = chat["timings"]["open"]
            reloads.append(
                {
                    "restored_tokens": chat["restoredTokens"],
                    "read_ms": round(opened["readMs"], 1),
                    "restore_ms": round(opened["restoreMs"], 1),
                    "bytes": opened["bytes"],
                    "load_average_1min": round(os.getloadavg()[0], 2),
                }
            )
            log.info("reload: %s", reloads[-1])
        page.click(".settings-panel summary")
        page.fill("#max-new-tokens", str(REPLY_TOKENS))
        after = send(page, "Thank you. One more question: what does enumerate return?")
    return {"threads": threads, "long_turn": turn, "reloads": reloads, "turn_after_reload": after}


def write_restore_report(data: dict[str, Any], out: Path) -> None:
    run = data["restore"]
    lines = [
        "# Restoring a saved conversation in the page (Chromium, wasm)",
        "",
        f"{data['chromium']}; 0.8B shape, random weights, the q8 wasm bundle, Qwen3.5's real vocabulary; "
        f"{run['threads']} wasm thread(s). One turn whose prompt is {run['long_turn']['prompt_tokens']} "
        f"tokens is saved by the page; each reload reads it from IndexedDB and restores its state in "
        f"the worker, in the background (the page is usable meanwhile). 1-minute load average before: "
        f"{data['load_average_before']} (2 shared cores). Command: `{data['command']}`.",
        "",
        "| reload | state tokens | MB | IndexedDB read (ms) | restore (ms) | read + restore (s) | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(run["reloads"], 1):
        total = (row["read_ms"] + row["restore_ms"]) / 1000
        lines.append(
            f"| {i} | {row['restored_tokens']} | {row['bytes'] / 1e6:.1f} | {row['read_ms']:.0f} | "
            f"{row['restore_ms']:.0f} | {total:.2f} | {row['load_average_1min']} |"
        )
    after = run["turn_after_reload"]
    lines += [
        "",
        f"- The turn after the last reload reused {after['reused_tokens']} tokens and prefilled "
        f"{after['prefilled_tokens']}: first token {after['first_token_ms'] / 1000:.2f} s.",
        "- restore: from the page's call (model.restoreConversation) to its answer: the bytes posted to "
        "the worker, the checksum (WebCrypto), the header parsed in Pyodide, each state copied once "
        "into its own typed array and handed to onnxruntime-web.",
    ]
    out.write_text("\n".join(lines) + "\n")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    bundle = real_vocab_bundle(bundle_for("0.8b"), WORK / "bundle")
    site = WORK / "site"
    build_site(SiteSpec(site, [(MODEL, bundle)], {MODEL: "bench.conversation_page"}))
    started = time.perf_counter()
    runs: dict[str, Any] = {}
    skipped: list[str] = []
    with serving(site) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS, headless=True)
        try:
            if args.restore_only:
                return {"restore": measure_restore(browser, url, args)}
            for threads in args.threads:
                long = threads in args.long_threads
                elapsed = time.perf_counter() - started
                if long and threads > 1 and elapsed > TWO_THREAD_LONG_BUDGET_S:
                    minutes = elapsed / 60
                    skipped.append(f"{threads} threads: no long history (after {minutes:.0f} min)")
                    long = False
                history = args.long_history if long else 0
                runs[str(threads)] = run_threads(browser, url, threads, args.turns, history)
                partial = WORK / "partial.json"  # a later failure keeps what was measured
                partial.write_text(json.dumps({"runs": runs, "skipped": skipped}, indent=2) + "\n")
        finally:
            browser.close()
    return {"runs": runs, "skipped": skipped, "wall_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    from bench.conversation_page_report import write_report
    from bench.page_harness import chromium_version

    description = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m bench.conversation_page", description=description)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--turns", type=int, default=len(USER_MESSAGES))
    parser.add_argument("--long-history", type=int, default=2000)
    parser.add_argument("--long-threads", default="1,2", help="thread counts that go on to the long history")
    parser.add_argument("--restore-only", action="store_true", help="time only the restore (see above)")
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    args.long_threads = [int(t) for t in args.long_threads.split(",") if t]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load = os.getloadavg()[0]
    data = measure(args)
    data.update(
        chromium=chromium_version(),
        budget_bytes=DEFAULT_BUDGET_BYTES,
        reply_tokens=REPLY_TOKENS,
        load_average_before=round(load, 2),
        cores=os.cpu_count(),
        command=" ".join(["python -m bench.conversation_page", *(sys.argv[1:] if argv is None else argv)]),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    if args.restore_only:
        (args.out / "conversation-page-restore.json").write_text(json.dumps(data, indent=2) + "\n")
        write_restore_report(data, args.out / "conversation-page-restore.md")
        return 0
    (args.out / "conversation-page.json").write_text(json.dumps(data, indent=2) + "\n")
    write_report(data, args.out / "conversation-page.md")
    log.info("wrote %s", args.out / "conversation-page.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
