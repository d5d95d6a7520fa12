"""Time to first token per turn of a scripted conversation, with and without state reuse (native).

    python -m bench.conversation [--threads 1] [--turns 8] [--long-history 2000]

The 0.8B shape with random weights (bench.artifacts builds it once under build/bench/0.8b: the
`--dtype q4 --logits last` export), 8 fixed user messages of ~40 tokens, replies of exactly 64
tokens (seeded sampling, no end-of-sequence before 64). Random weights write random token ids, so
the bundle is driven with Qwen3.5's real vocabulary (devtools/real_vocab.py): the replies
decode to text of about their length and the history grows as it would with a real model. Then the
conversation goes on with reuse until its history passes --long-history tokens, and that turn's
time to first token is compared with a fresh prefill of the same prompt. Last, the conversation is
saved and restored (file size, milliseconds).

Writes bench/results/conversation.json and conversation.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.artifacts import project_bundle
from qwen35web.runtime.conversation import Conversation
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams
from qwen35web.runtime.turn import TurnResult

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "build" / "bench"
RESULTS = REPO / "bench" / "results"
SYSTEM = "You are a patient Python tutor. Answer in a few sentences."
USER_MESSAGES = [
    "Could you explain what a Python iterator is and how the next function moves it along?",
    "How does json.dumps turn a dictionary into text, and what does the indent argument change?",
    "What is the difference between a list and a tuple when I want to return several values?",
    "When should I use pathlib instead of os.path for joining directory names on my system?",
    "Can you show how functools.partial fixes some arguments of a function for later calls?",
    "Why does sorting a list of strings put capital letters first, and how do I ignore case?",
    "What happens when a generator function reaches a return statement in the middle of a loop?",
    "How can I read a large text file line by line without loading the whole file into memory?",
]
# The simulated person's messages (bench.conversation_person, bench.conversation_page_person): 29-30 tokens
# each in Qwen3.5's vocabulary, the issue's 30-token message; 20 of them, one per turn of the 20-turn table.
PERSON_MESSAGES = [
    (
        "Could you explain what a Python iterator is, how the next function moves it along, and what "
        "happens when it runs out of items? Thanks."
    ),
    (
        "How does json.dumps turn a nested dictionary into text, and what do the indent and sort_keys "
        "arguments change in its output? Please be brief."
    ),
    (
        "What is the difference between a list and a tuple when a function has to return several values,"
        " and which one should I pick? Please be brief."
    ),
    (
        "When should I use pathlib instead of os.path for joining directory names, and does it work the "
        "same way on Windows and Linux? Please be brief."
    ),
    (
        "Can you show how functools.partial fixes some arguments of a function, so that I can pass the "
        "result on as a callback later? Please be brief."
    ),
    (
        "Why does sorting a list of strings put the capital letters first, and how do I sort them so "
        "that the case is ignored instead? Thanks."
    ),
    (
        "What happens when a generator function reaches a return statement in the middle of a loop, and "
        "can the caller see that value? Please be brief."
    ),
    (
        "How can I read a very large text file line by line without loading the whole file into memory, "
        "and still count its words? Please be brief."
    ),
    (
        "What does the with statement do when I open a file, and what would go wrong if an exception "
        "happened before I closed it myself? Thanks."
    ),
    (
        "How do default argument values work in Python, and why does a list used as a default value keep"
        " growing between the calls? Please be brief."
    ),
    (
        "Could you explain the difference between a shallow copy and a deep copy of a dictionary that "
        "holds lists as its values? A short example would help."
    ),
    (
        "What is a decorator in Python, and how would I write one that prints how long each call of the "
        "decorated function took? Please be brief."
    ),
    (
        "How do I catch several kinds of exceptions in one except clause, and when is it better to "
        "handle each of them separately? Please be brief."
    ),
    (
        "Why is it said that strings in Python are immutable, and what really happens in memory when I "
        "add two strings together? A short example would help."
    ),
    (
        "What does the enumerate function return when I loop over a list, and how do I make its counter "
        "start at one instead? Please be brief."
    ),
    (
        "How can I merge two dictionaries into a new one so that the values of the second one win when "
        "both have the same key? Please be brief."
    ),
    (
        "What is the difference between the is operator and the double equals sign, and why does "
        "comparing with None use the first? A short example would help."
    ),
    (
        "How do list comprehensions compare with a plain for loop in speed and readability, and when "
        "should I avoid writing them? A short example would help."
    ),
    (
        "Could you explain what the global and nonlocal keywords do, and why changing a global variable "
        "inside a function needs one? A short example would help."
    ),
    (
        "How would I write a small class with a __repr__ method so that printing a list of its objects "
        "shows something readable? Please be brief."
    ),
]
REPLY_TOKENS = 64


def turn_params(turn: int) -> SamplingParams:
    return SamplingParams(
        temperature=1.0, seed=turn, max_new_tokens=REPLY_TOKENS, min_new_tokens=REPLY_TOKENS
    )


async def open_with_real_vocab(bundle: Path, threads: int, budget: int) -> Runtime:
    from devtools.real_vocab import real_tokenizer_json
    from qwen35web.runtime.tokenizer import Tokenizer

    runtime = await open_native(bundle, threads=threads, kept_states_budget=budget)
    # The real vocabulary instead of the bundle's small test tokenizer (see the module docstring).
    runtime.tokenizer = runtime.generator.tokenizer = Tokenizer.from_file(real_tokenizer_json())
    return runtime


def _row(turn: int, result: TurnResult, runtime: Runtime) -> dict[str, Any]:
    cache = runtime.cache
    return {
        "turn": turn,
        "prompt_tokens": result.prompt_tokens,
        "reused_tokens": result.reused_tokens,
        "prefilled_tokens": result.prefilled_tokens,
        "first_token_ms": round(result.first_token_ms, 1),
        "prefill_ms": round(result.prefill_ms, 1),
        "decode_tokens_per_s": round(result.decode_tokens_per_s, 2),
        "reply_tokens": len(result.tokens),
        "kept_bytes": cache.held_bytes() if cache is not None else 0,
        "kept_states": len(cache.kept) if cache is not None else 0,
    }


async def _converse(runtime: Runtime, turns: int, until_prompt: int = 0) -> tuple[list[dict], Conversation]:
    """`turns` turns, then more (cycling the messages) until a prompt reaches `until_prompt` tokens."""
    conversation = Conversation(runtime, system=SYSTEM)
    rows: list[dict] = []
    turn = 0
    while turn < turns or (rows and rows[-1]["prompt_tokens"] < until_prompt):
        message = USER_MESSAGES[turn % len(USER_MESSAGES)]
        result = await conversation.say(message, turn_params(turn))
        turn += 1
        rows.append(_row(turn, result, runtime))
    return rows, conversation


async def _save_restore(runtime: Runtime, conversation: Conversation) -> dict[str, Any]:
    from qwen35web.runtime.saved_conversation import load_file, save_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chat.q35"
        start = time.perf_counter()
        size = await save_file(runtime, conversation.messages, path)
        saved_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        load_file(runtime, path)
        restored_ms = (time.perf_counter() - start) * 1000
    return {
        "history_tokens": len(runtime.runner.token_ids),
        "file_mb": round(size / 1e6, 2),
        "save_ms": round(saved_ms, 1),
        "restore_ms": round(restored_ms, 1),
    }


async def measure(bundle: Path, threads: int, turns: int, long_history: int, budget: int) -> dict[str, Any]:
    runtime = await open_with_real_vocab(bundle, threads, budget)
    reuse_rows, conversation = await _converse(runtime, turns, until_prompt=long_history)
    persisted = await _save_restore(runtime, conversation)
    history, last_message = conversation.messages[:-2], conversation.messages[-2]["content"]
    await runtime.close()

    fresh = await open_with_real_vocab(bundle, threads, budget=0)
    fresh_rows, _ = await _converse(fresh, turns)
    # The last turn again, from nothing: the whole history prefilled (rendering included, as above).
    refill = await Conversation(fresh, messages=history).say(last_message, SamplingParams(max_new_tokens=1))
    await fresh.close()
    return {
        "reuse": reuse_rows,
        "no_reuse": fresh_rows,
        "long_history": {
            "prompt_tokens": refill.prompt_tokens,
            "first_token_ms_reuse": reuse_rows[-1]["first_token_ms"],
            "first_token_ms_fresh": round(refill.first_token_ms, 1),
        },
        "persist": persisted,
        "budget_bytes": budget,
    }


def write_report(data: dict[str, Any], out: Path) -> None:
    reuse, fresh = data["reuse"], data["no_reuse"]
    turns = len(fresh)
    lines = [
        "# Conversation: time to first token per turn, with and without state reuse",
        "",
        f"0.8B shape, random weights, `--dtype q4 --logits last`, onnxruntime {data['onnxruntime']} CPU, "
        f"{data['threads']} thread; {turns} user messages of ~40 tokens, replies of {REPLY_TOKENS} tokens "
        f"(Qwen3.5's real vocabulary). 1-min load average before: {data['load_average']} (2 shared cores).",
        f"Command: `{data['command']}`.",
        "",
        "| turn | prompt tokens | reuse: reused / prefilled | reuse: first token (s) | "
        "no reuse: first token (s) | speedup | kept states MiB (count) |",
        "|---|---|---|---|---|---|---|",
    ]
    for with_reuse, without in zip(reuse[:turns], fresh, strict=True):
        speedup = without["first_token_ms"] / with_reuse["first_token_ms"]
        lines.append(
            f"| {with_reuse['turn']} | {with_reuse['prompt_tokens']} | {with_reuse['reused_tokens']} / "
            f"{with_reuse['prefilled_tokens']} | {with_reuse['first_token_ms'] / 1000:.2f} | "
            f"{without['first_token_ms'] / 1000:.2f} | {speedup:.1f}× | "
            f"{with_reuse['kept_bytes'] / 2**20:.0f} ({with_reuse['kept_states']}) |"
        )
    long, persist = data["long_history"], data["persist"]
    long_reuse_s, long_fresh_s = long["first_token_ms_reuse"] / 1000, long["first_token_ms_fresh"] / 1000
    kept_mib = max(r["kept_bytes"] for r in reuse) / 2**20
    reply_reused = [r["turn"] for r in reuse[1:] if r["prefilled_tokens"] < REPLY_TOKENS // 2]
    ratio_8_1 = reuse[turns - 1]["first_token_ms"] / reuse[0]["first_token_ms"]
    ratio_8_2 = reuse[turns - 1]["first_token_ms"] / reuse[1]["first_token_ms"]
    ratio_fresh = fresh[-1]["first_token_ms"] / fresh[0]["first_token_ms"]
    lines += [
        "",
        f"- Turn {turns} / turn 1 time to first token with reuse: **{ratio_8_1:.2f}×** (target ≤ 1.5×); "
        f"without reuse {ratio_fresh:.2f}×; turn {turns} / turn 2 with reuse {ratio_8_2:.2f}× (flat: each "
        "turn prefills the previous reply and the new message, see below).",
        f"- At a {long['prompt_tokens']}-token history (turn {len(reuse)}): first token "
        f"{long_reuse_s:.2f} s with reuse vs {long_fresh_s:.2f} s re-prefilling it: "
        f"**{long_fresh_s / long_reuse_s:.1f}×** (target ≥ 10×).",
        f"- Kept states: at most {kept_mib:.1f} MiB over {len(reuse)} turns, budget "
        f"{data['budget_bytes'] / 2**20:.0f} MiB (bytes of the distinct tensors held; least recently "
        "used dropped first).",
        f"- Saved conversation ({persist['history_tokens']} tokens of state): {persist['file_mb']} MB, "
        f"save {persist['save_ms']:.0f} ms, restore {persist['restore_ms']:.0f} ms (native, file on disk; "
        "the page's: conversation-page.md).",
        "",
        "Random weights write random token ids, which the tokenizer seldom gives back when the reply is "
        "re-rendered as text, so a turn resumes from the state kept before the reply (the end of the "
        "previous prompt's history) and prefills the reply again with the new message. A trained model's "
        "reply usually re-tokenizes as generated; then the turn resumes after the reply and prefills only "
        "the new message (see tests/runtime/test_conversation.py). Here that happened by chance in turns "
        f"{', '.join(map(str, reply_reused)) or 'none'} (about 30 tokens prefilled instead of about 95).",
        "Qwen's thinking templates re-render a past reply without its reasoning, so there each turn "
        "prefills the previous answer again whatever the weights.",
    ]
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    import onnxruntime

    parser = argparse.ArgumentParser(prog="python -m bench.conversation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--turns", type=int, default=len(USER_MESSAGES))
    parser.add_argument("--long-history", type=int, default=2000)
    parser.add_argument("--budget-mb", type=int, default=512)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    bundle = project_bundle(WORK, "0.8b", "fused-q4", "fused", "q4")
    if bundle is None:
        raise SystemExit("error: the 0.8B q4 export failed (see build/bench/0.8b/fused-q4.log)")
    load = os.getloadavg()[0]
    data = asyncio.run(measure(bundle, args.threads, args.turns, args.long_history, args.budget_mb << 20))
    data.update(
        threads=args.threads,
        onnxruntime=onnxruntime.__version__,
        load_average=round(load, 2),
        command=" ".join(["python -m bench.conversation", *(sys.argv[1:] if argv is None else argv)]),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conversation.json").write_text(json.dumps(data, indent=2) + "\n")
    write_report(data, args.out / "conversation.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
