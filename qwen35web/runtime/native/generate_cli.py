"""`qwen35web generate BUNDLE_DIR --prompt TEXT [--chat [--thinking | --no-thinking]] [--max-new-tokens N]
[--greedy] [--temperature T] [--top-k K] [--top-p P] [--presence-penalty P] [--frequency-penalty F]
[--reasoning-budget N] [--seed S] [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qwen35web.cli_support import OneLineParser
from qwen35web.runtime.errors import GenerationInputError, RuntimeUserError
from qwen35web.runtime.generation import CancelToken
from qwen35web.runtime.generation_defaults import with_bundle_defaults
from qwen35web.runtime.sampling import DEFAULT_NUDGE, SamplingParams


def add_sampling_arguments(parser: argparse.ArgumentParser, max_new_tokens: int = 128) -> None:
    """The sampling and engine flags `generate` and `chat` share.

    Sampling flags left out take the bundle's defaults (the checkpoint's generation_config.json, recorded
    in the manifest), else the runtime's own, shown in brackets."""
    add = parser.add_argument
    add(
        "--max-new-tokens",
        type=int,
        default=max_new_tokens,
        help=f"most tokens to generate [{max_new_tokens}]",
    )
    add("--min-new-tokens", type=int, default=0, help="no end-of-sequence before N tokens [0]")
    add("--greedy", action="store_true", default=None, help="always take the most likely token")
    add("--sample", dest="greedy", action="store_false", help="sample even if the bundle defaults to greedy")
    add("--temperature", type=float, default=None, help="softmax temperature, > 0 [bundle, else 1.0]")
    add(
        "--top-k",
        type=int,
        default=None,
        help="sample among the K most likely tokens; 0 = off [bundle, else 0]",
    )
    add("--top-p", type=float, default=None, help="nucleus sampling mass in (0, 1] [bundle, else 1.0]")
    add("--repetition-penalty", type=float, default=None, help="> 1 discourages repeats [bundle, else 1.0]")
    add(
        "--presence-penalty",
        type=float,
        default=None,
        help="in [-2, 2]: subtracted from the logit of each token the reply already holds [bundle, else 0]",
    )
    add(
        "--frequency-penalty",
        type=float,
        default=None,
        help="in [-2, 2]: subtracted once per occurrence in the reply so far [bundle, else 0]",
    )
    add(
        "--reasoning-budget",
        type=int,
        default=None,
        metavar="N",
        help="after N reasoning tokens, close the reasoning (the model then answers) [no limit]",
    )
    add(
        "--reasoning-nudge",
        default=DEFAULT_NUDGE,
        metavar="TEXT",
        help="fed before the closing tag when the budget runs out ('' for none) [a sentence to conclude]",
    )
    add("--stop", action="append", default=[], help="stop when this text appears (repeatable)")
    add("--seed", type=int, default=None, help="seed for sampling (same seed, same tokens)")
    add("--prefill-chunk", type=int, default=256, help="prompt tokens per graph call [256]")
    add("--threads", type=int, default=None, help="onnxruntime intra-op threads [onnxruntime's choice]")


def add_thinking_arguments(parser: argparse.ArgumentParser) -> None:
    """--thinking / --no-thinking: the template's enable_thinking, passed only when one is given."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--thinking",
        dest="enable_thinking",
        action="store_const",
        const=True,
        default=None,
        help="ask the template for reasoning [the template's default: the manifest's thinking_default]",
    )
    group.add_argument(
        "--no-thinking",
        dest="enable_thinking",
        action="store_const",
        const=False,
        help="ask the template for no reasoning",
    )


def add_kept_states_argument(parser: argparse.ArgumentParser) -> None:
    """The prefix cache's memory, as `chat` and `serve` take it."""
    parser.add_argument(
        "--kept-states-mb",
        "--snapshot-budget-mb",  # its old name, still accepted
        dest="kept_states_mb",
        type=float,
        default=512,
        help="memory for kept states (0: no reuse) [512]",
    )


def add_image_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The image-token caps `generate` and `chat` share (vision bundles; defaults in the manifest)."""
    add = parser.add_argument
    add(
        "--max-image-tokens",
        type=int,
        default=None,
        metavar="N",
        help="resize each image to at most N image tokens [the bundle's cap for native]",
    )
    add(
        "--max-prompt-image-tokens",
        type=int,
        default=None,
        metavar="N",
        help="refuse a prompt whose images need more than N image tokens together [the bundle's]",
    )


def sampling_params(args: argparse.Namespace, generation: Mapping[str, Any]) -> SamplingParams:
    """The flags given, over the bundle's sampling defaults (`generation`: the manifest's section)."""
    user = {
        "greedy": args.greedy,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "repetition_penalty": args.repetition_penalty,
        "presence_penalty": args.presence_penalty,
        "frequency_penalty": args.frequency_penalty,
    }
    return SamplingParams(
        **with_bundle_defaults(user, generation),
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=args.min_new_tokens,
        stop_strings=tuple(args.stop),
        reasoning_budget=args.reasoning_budget,
        reasoning_nudge=args.reasoning_nudge,
    )


def build_parser(prog: str = "qwen35web generate") -> argparse.ArgumentParser:
    gen = OneLineParser(prog=prog, description="Generate text with an exported Qwen3.5 bundle.")
    gen.add_argument("bundle", type=Path, help="a bundle directory written by `qwen35web export`")
    gen.add_argument("--prompt", required=True, help="the text to continue (with --chat: the user message)")
    gen.add_argument("--chat", action="store_true", help="wrap the prompt in the bundle's chat template")
    gen.add_argument(
        "--image",
        action="append",
        default=[],
        type=Path,
        help="an image for a vision bundle, placed before the prompt (repeatable; needs --chat)",
        metavar="PATH",
    )
    add_sampling_arguments(gen)
    add_thinking_arguments(gen)
    add_image_limit_arguments(gen)
    gen.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    return gen


async def _generate(args: argparse.Namespace) -> int:
    from qwen35web.runtime.native.open_bundle import open_native
    from qwen35web.runtime.vision.prompt import image_message

    sampling_params(args, {})  # bad flags fail before the bundle loads
    if args.image and not args.chat:
        raise GenerationInputError("--image needs --chat (images go into a chat message)")
    if args.enable_thinking is not None and not args.chat:
        raise GenerationInputError(
            "--thinking and --no-thinking need --chat (they choose the template's mode)"
        )
    runtime = await open_native(
        args.bundle,
        threads=args.threads,
        prefill_chunk=args.prefill_chunk,
        max_image_tokens=args.max_image_tokens,
        max_prompt_image_tokens=args.max_prompt_image_tokens,
    )
    params = sampling_params(args, runtime.manifest.generation)
    cancel = CancelToken()
    try:
        if args.image:
            image_ids = [runtime.add_image(path) for path in args.image]  # every file checked first
            prompt = runtime.prompt(
                messages=[image_message(args.prompt, image_ids)], enable_thinking=args.enable_thinking
            )
        else:
            prompt = runtime.prompt(args.prompt, chat=args.chat, enable_thinking=args.enable_thinking)
        runtime.generator.check_prompt(prompt.ids)
        async for piece in runtime.stream(prompt.ids, params, cancel, images=prompt.images):
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
