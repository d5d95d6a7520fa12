"""Presence/frequency penalties on the trained tiny model: how repetitive N generated tokens are.

    python -m bench.penalties [--model models/tiny-qwen35] [--tokens 128]

Exports the checkpoint (fp32, fused) to a temporary bundle, generates greedily and sampled (T=1,
top_k=20, five seeds) from a few prompts with each setting, and writes bench/results/penalties.md:
distinct tokens and repeats (tokens already in the reply) over the tokens generated, and the longest
run of a repeated 4-gram. min_new_tokens keeps every reply at the full length.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from qwen35web.export.pipeline import ExportOptions, run_export
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams

PROMPTS = ["The json module", "Return a list of", "class Path:", "What does itertools.chain do?"]
SETTINGS = [
    ("none", 0.0, 0.0),
    ("presence 0.5", 0.5, 0.0),
    ("presence 1.5", 1.5, 0.0),
    ("presence 2.0 (card, non-thinking)", 2.0, 0.0),
    ("frequency 0.5", 0.0, 0.5),
    ("frequency 1.0", 0.0, 1.0),
    ("presence 1.5 + frequency 0.5", 1.5, 0.5),
]
SEEDS = (1, 2, 3, 4, 5)


def repeated_4grams(tokens: list[int]) -> int:
    grams = [tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)]
    return len(grams) - len(set(grams))


async def measure(bundle: Path, tokens: int) -> list[tuple[str, str, float, float, float]]:
    runtime = await open_native(bundle)
    rows = []
    try:
        for name, presence, frequency in SETTINGS:
            for mode in ("greedy", "sampled"):
                replies = []
                for prompt in PROMPTS:
                    ids = runtime.tokenizer.encode(prompt)
                    for seed in SEEDS if mode == "sampled" else (None,):
                        params = SamplingParams(
                            greedy=mode == "greedy",
                            temperature=1.0,
                            top_k=20,
                            presence_penalty=presence,
                            frequency_penalty=frequency,
                            seed=seed,
                            max_new_tokens=tokens,
                            min_new_tokens=tokens,
                        )
                        replies.append((await runtime.generate(ids, params)).tokens)
                distinct = sum(len(set(r)) for r in replies) / len(replies)
                repeats = sum(len(r) - len(set(r)) for r in replies) / len(replies)
                grams = sum(repeated_4grams(r) for r in replies) / len(replies)
                rows.append((name, mode, distinct, repeats, grams))
    finally:
        await runtime.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/tiny-qwen35"))
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("bench/results/penalties.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        run_export(ExportOptions(args.model, bundle))
        rows = asyncio.run(measure(bundle, args.tokens))
    lines = [
        f"# Penalties on {args.model.name}: {args.tokens} generated tokens per reply",
        "",
        f"Prompts {PROMPTS}; greedy (1 reply each) and sampled (T=1, top_k=20, seeds {list(SEEDS)}); "
        "means per reply. Reproduce: `python -m bench.penalties`. 1-minute load average at the end: "
        f"{os.getloadavg()[0]:.2f}.",
        "",
        "| penalty | decoding | distinct tokens | repeats | repeated 4-grams |",
        "|---|---|---:|---:|---:|",
        *(f"| {n} | {m} | {d:.1f} | {r:.1f} | {g:.1f} |" for n, m, d, r, g in rows),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
