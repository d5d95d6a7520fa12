"""Send to first token per turn for a simulated person, prefill ahead and while typing off vs on (native).

    python -m bench.conversation_person [--model 0.8b|tiny] [--threads 1,2] [--turns 20]
                                        [--type-cps 5] [--read-cps 25]

With the feature on, the person reads each reply (its characters at --read-cps), then types the next of
bench/conversation.py's PERSON_MESSAGES (29-30 tokens each) at --type-cps characters a second, handing
the draft over as the page does (at most every 0.2 s, Conversation.prepare), and sends when the last
character is typed. The model works meanwhile: after a reply it prefills the next turn's opening, while
the message is typed its stable part (qwen35web.runtime.prefill_ahead). With it off no background work
happens, so reading and typing would change nothing: each message is sent at once. Per thread count the
same conversation (seeded 64-token replies) runs twice in this process, off then on, so the gain is a
ratio. Per turn: Send to first token (the wait for a background chunk, rendering and tokenising
included), tokens reused / prefilled after Send, and the 1-minute load average. The 0.8B shape is the
page's wasm bundle (`--dtype q8 --logits last`, built once under build/bench/0.8b) with Qwen3.5's real
vocabulary, as bench/conversation.py; `tiny` is the seeded test checkpoint with its own small tokenizer
(a quick run of the mechanism, not of the targets).

Writes bench/results/conversation-person.json and conversation-person.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.conversation import PERSON_MESSAGES, REPLY_TOKENS, SYSTEM, open_with_real_vocab, turn_params
from bench.page_harness import bundle_for
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.native.open_bundle import open_native

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
HANDOVER_S = 0.2  # the page's draft throttle


async def _person_turn(conversation: Conversation, message: str, turn: int, args: argparse.Namespace) -> dict:
    """Read the last reply, type `message` (drafts handed over), send; the turn's row."""
    runtime = conversation.runtime
    last = conversation.last
    if last is not None and args.ahead:  # off: nothing happens meanwhile, so the message goes at once
        await asyncio.sleep(len(last.reasoning + last.text) / args.read_cps)
    handed = due = time.perf_counter()
    for end in range(1, len(message) + 1 if args.ahead else 0):
        due = time.perf_counter() + 1 / args.type_cps
        await asyncio.sleep(1 / args.type_cps)
        if args.ahead and time.perf_counter() - handed >= HANDOVER_S:
            conversation.prepare(message[:end])
            handed = time.perf_counter()
    # Natively a background chunk runs on this thread: a Send that falls inside one happens at its end.
    late_ms = max(0.0, time.perf_counter() - due) * 1000
    prefilled_before = runtime.ahead.stats.prefilled_tokens
    result = await conversation.say(message, turn_params(turn))
    return {
        "turn": turn + 1,
        "message_tokens": len(runtime.tokenizer.encode(message)),
        "prompt_tokens": result.prompt_tokens,
        "reused_tokens": result.reused_tokens,
        "prefilled_tokens": result.prefilled_tokens,
        "first_token_ms": round(result.first_token_ms + late_ms, 1),  # from when Send was due
        "waited_ms": round(runtime.ahead.stats.last_wait_ms + late_ms, 1),
        "render_ms": round(result.render_ms, 1),  # rendering and tokenising the whole conversation
        "prefill_ms": round(result.prefill_ms, 1),  # kept state restored + forward
        "background_tokens": prefilled_before,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


async def _converse(runtime: Runtime, args: argparse.Namespace) -> list[dict[str, Any]]:
    conversation = Conversation(runtime, system=SYSTEM)
    conversation.prefill_ahead = args.ahead
    if args.ahead:
        conversation.prepare()  # the page prepares an empty chat's opening as it opens
    rows = []
    for turn in range(args.turns):
        message = PERSON_MESSAGES[turn % len(PERSON_MESSAGES)]
        rows.append(await _person_turn(conversation, message, turn, args))
        print(
            f"threads={args.thread} ahead={'on' if args.ahead else 'off'} {rows[-1]}",
            file=sys.stderr,
            flush=True,
        )
    return rows


async def measure(bundle: Path, args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for threads in args.threads:
        args.thread = threads
        for ahead in (False, True):
            args.ahead = ahead
            if args.model == "tiny":  # its own small vocabulary: the real one's ids lie outside its embedding
                runtime = await open_native(bundle, threads=threads)
            else:
                runtime = await open_with_real_vocab(bundle, threads, 512 << 20)
            runs.setdefault(str(threads), {})["on" if ahead else "off"] = await _converse(runtime, args)
            await runtime.close()
    return runs


def summary(off: list[dict[str, Any]], on: list[dict[str, Any]]) -> dict[str, float]:
    """The table's figures: the slowest turn on, turn N / turn 1 (on, off), off / on per turn."""
    seconds = {name: [r["first_token_ms"] / 1000 for r in rows] for name, rows in (("off", off), ("on", on))}
    gains = sorted(a / b for a, b in zip(seconds["off"], seconds["on"], strict=True))
    return {
        "slowest_on_s": max(seconds["on"]),
        "last_over_first_on": seconds["on"][-1] / seconds["on"][0],
        "last_over_first_off": seconds["off"][-1] / seconds["off"][0],
        "off_over_on_min": gains[0],
        "off_over_on_median": gains[len(gains) // 2],
        "off_over_on_max": gains[-1],
    }


def _parts(row: dict[str, Any]) -> str:
    """Where an on-turn's time went: the wait for a background chunk, rendering, the forward."""
    if "render_ms" not in row:  # results written before these columns
        return f"{row['waited_ms']:.0f} / – / –"
    return f"{row['waited_ms']:.0f} / {row['render_ms']:.0f} / {row['prefill_ms']:.0f}"


def _thread_lines(threads: str, run: dict[str, Any]) -> list[str]:
    off, on = run["off"], run["on"]
    lines = [
        f"## {threads} thread(s)",
        "",
        "| turn | message tokens | prompt tokens | off: prefilled after Send | off: first token (s) | on: "
        "prefilled after Send | on: waited / render / restore+forward (ms) | on: first token (s) | off / on "
        "| load avg (off / on) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a, b in zip(off, on, strict=True):
        lines.append(
            f"| {a['turn']} | {a['message_tokens']} | {b['prompt_tokens']} | {a['prefilled_tokens']} | "
            f"{a['first_token_ms'] / 1000:.2f} | {b['prefilled_tokens']} | {_parts(b)} | "
            f"{b['first_token_ms'] / 1000:.2f} | {a['first_token_ms'] / b['first_token_ms']:.1f}× | "
            f"{a['load_average_1min']} / {b['load_average_1min']} |"
        )
    f = summary(off, on)
    lines += [
        "",
        f"- On: slowest turn **{f['slowest_on_s']:.2f} s** to the first token; turn {len(on)} / turn 1: "
        f"**{f['last_over_first_on']:.2f}×** (off: {f['last_over_first_off']:.2f}×). Off / on per turn: "
        f"{f['off_over_on_min']:.1f}–{f['off_over_on_max']:.1f}× (median {f['off_over_on_median']:.1f}×).",
        "",
    ]
    return lines


def write_report(data: dict[str, Any], out: Path) -> None:
    lines = [
        "# A simulated person: Send to first token per turn, prefill ahead and typing off vs on (native)",
        "",
        f"{data['model']}, onnxruntime {data['onnxruntime']} CPU; replies of {REPLY_TOKENS} tokens. On: each "
        f"reply read at {data['read_cps']} characters/s, each message typed at {data['type_cps']} "
        f"characters/s (drafts handed over every {HANDOVER_S} s), sent when typed. Off: no background work, "
        "so each message is sent at once (no reading or typing time). 1-minute load average before: "
        f"{data['load_average']} (2 cores shared with other engineers' work: absolute seconds are noisy, "
        f"the ratios less so). Command: `{data['command']}`.",
        "",
    ]
    for threads, run in data["runs"].items():
        lines += _thread_lines(threads, run)
    lines.append(
        "Every turn's tokens are checked equal to a fresh prefill in tests/runtime/test_prefill_ahead.py; "
        "here both runs sample with the same seeds."
    )
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    import onnxruntime

    description = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m bench.conversation_person", description=description)
    parser.add_argument("--model", default="0.8b", choices=["0.8b", "tiny"])
    parser.add_argument("--threads", default="1", help="thread counts, e.g. 1,2")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--type-cps", type=float, default=5.0)
    parser.add_argument("--read-cps", type=float, default=25.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    given = sys.argv[1:] if argv is None else argv
    bundle = bundle_for(args.model)
    load = round(os.getloadavg()[0], 2)
    runs = asyncio.run(measure(bundle, args))
    data = {
        "runs": runs,
        "model": "0.8B shape, random weights, `--dtype q8 --logits last`" if args.model == "0.8b" else "tiny",
        "threads": args.threads,
        "type_cps": args.type_cps,
        "read_cps": args.read_cps,
        "onnxruntime": onnxruntime.__version__,
        "load_average": load,
        "command": " ".join(["python -m bench.conversation_person", *given]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conversation-person.json").write_text(json.dumps(data, indent=2) + "\n")
    write_report(data, args.out / "conversation-person.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
