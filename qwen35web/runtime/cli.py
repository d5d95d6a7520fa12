"""`qwen35web generate BUNDLE_DIR --prompt TEXT [--chat] [--max-new-tokens N] [--greedy]
[--temperature T] [--top-k K] [--top-p P] [--seed S] [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from qwen35web.cli_support import OneLineParser
from qwen35web.runtime.errors import RuntimeUserError
from qwen35web.runtime.generation import CancelToken
from qwen35web.runtime.sampling import SamplingParams


def add_sampling_arguments(parser: argparse.ArgumentParser, max_new_tokens: int = 128) -> None:
    """The sampling and engine flags `generate` and `chat` share."""
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    parser.add_argument("--min-new-tokens", type=int, default=0, help="no end-of-sequence before N tokens")
    parser.add_argument("--greedy", action="store_true")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--prefill-chunk", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None)


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(
        greedy=args.greedy,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.min_new_tokens,
        stop_strings=tuple(args.stop),
    )


def build_parser(prog: str = "qwen35web generate") -> argparse.ArgumentParser:
    gen = OneLineParser(prog=prog, description="Generate text with an exported Qwen3.5 bundle.")
    gen.add_argument("bundle", type=Path)
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--chat", action="store_true", help="wrap the prompt in the bundle's chat template")
    add_sampling_arguments(gen)
    gen.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    return gen


async def _generate(args: argparse.Namespace) -> int:
    from qwen35web.runtime.runtime import open_native

    params = sampling_params(args)
    runtime = await open_native(args.bundle, threads=args.threads, prefill_chunk=args.prefill_chunk)
    prompt_ids = runtime.prompt_ids(args.prompt, chat=args.chat)
    cancel = CancelToken()
    try:
        async for piece in runtime.stream(prompt_ids, params, cancel):
            if not args.json:
                sys.stdout.write(piece)
                sys.stdout.flush()
    finally:
        await runtime.close()
    result = runtime.generator.result
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        sys.stdout.write("\n")
    return 0


def main(argv: list[str] | None = None, prog: str = "qwen35web generate") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return asyncio.run(_generate(args))
    except RuntimeUserError as err:
        sys.stderr.write(f"error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
