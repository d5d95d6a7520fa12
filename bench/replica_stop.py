"""On the replicas of the published Qwen3.5 repositories: where a reply stops (the bundle vs transformers'
`generate` with the bundle's stop ids, and with config.json's eos alone, as the manifest had it before),
and what each template renders by default.

    python -m bench.replica_stop [--work DIR]

Writes bench/results/replica.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import torch

from devtools.published_replica import ENDOFTEXT_ID, write_replica
from qwen35web.export.checkpoint import Checkpoint
from qwen35web.export.config import read_config_json, spec_from_config
from qwen35web.export.pipeline import ExportOptions, run_export
from qwen35web.export.reference import load_reference
from qwen35web.runtime.chat import render_chat
from qwen35web.runtime.manifest import load_local_manifest
from qwen35web.runtime.native.open_bundle import open_native
from qwen35web.runtime.sampling import SamplingParams

RESULTS = Path(__file__).resolve().parent / "results" / "replica.md"
PROMPT = "Tell me a story."
MAX_NEW_TOKENS = 24


def _reference(checkpoint: Path, prompt_ids: list[int], eos: list[int]) -> list[int]:
    config = read_config_json(checkpoint)
    model = load_reference(spec_from_config(config), config, Checkpoint(checkpoint))
    generate: Any = model.generate  # transformers' GenerationMixin (typed as a Module attribute)
    with torch.no_grad():
        out = generate(
            torch.tensor([prompt_ids]),
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=ENDOFTEXT_ID,
        )
    return out[0, len(prompt_ids) :].tolist()


async def _ours(bundle: Path) -> tuple[list[int], list[int], str]:
    runtime = await open_native(bundle)
    try:
        prompt = runtime.prompt(PROMPT, chat=True)
        result = await runtime.generate(
            prompt.ids, SamplingParams(greedy=True, max_new_tokens=MAX_NEW_TOKENS)
        )
        return prompt.ids, result.tokens, result.stop_reason
    finally:
        await runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replica_stop")
    parser.add_argument("--work", type=Path, default=Path("build/bench/replica"))
    args = parser.parse_args(argv)
    lines = ["# The published-layout replicas: stop ids and thinking defaults", ""]
    lines.append(f"Load average (1 min) at start: {os.getloadavg()[0]:.2f}. Prompt: {PROMPT!r}, greedy.")
    lines.append("")
    for layout in ("0.8b", "4b"):
        checkpoint = write_replica(args.work / f"ckpt-{layout}", layout, ends_turns=layout == "0.8b")
        bundle = args.work / f"bundle-{layout}"
        run_export(ExportOptions(checkpoint, bundle, force=True))
        manifest = load_local_manifest(bundle)
        prompt_ids, tokens, reason = asyncio.run(_ours(bundle))
        with_stops = _reference(checkpoint, prompt_ids, list(manifest.eos_token_ids))
        config_only = _reference(checkpoint, prompt_ids, [ENDOFTEXT_ID])
        template = manifest.chat_template or ""
        user = [{"role": "user", "content": PROMPT}]
        history = render_chat(template, user, add_generation_prompt=False)
        generation_prompt = {
            name: render_chat(template, user, **extra)[len(history) :]
            for name, extra in (
                ("default", {}),
                ("True", {"enable_thinking": True}),
                ("False", {"enable_thinking": False}),
            )
        }
        lines += [
            f"## {layout} layout",
            "",
            f"- manifest `eos_token_ids` {list(manifest.eos_token_ids)}, `thinking_default` "
            f"{json.dumps(manifest.thinking_default)}",
            "- generation prompt by enable_thinking: "
            + ", ".join(f"{k}: {v!r}" for k, v in generation_prompt.items()),
            f"- bundle (native runtime): tokens {tokens}, stop_reason {reason}",
            f"- transformers generate, eos = the bundle's stop ids: {with_stops}",
            f"- transformers generate, eos = config.json's only ({ENDOFTEXT_ID}): {len(config_only)} tokens "
            f"(first {config_only[:4]})",
            "",
        ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
