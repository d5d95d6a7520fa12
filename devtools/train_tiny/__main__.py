"""python -m devtools.train_tiny OUT_DIR [--steps N] [--seed S] [--force]"""

from __future__ import annotations

import os

# Must precede torch's import (OpenMP reads it once). On a busy 2-core machine OpenMP's default spin-waiting
# made batched LAPACK calls (the delta rule's triangular solves) 20-300x slower; waiting passively fixes that
# and does not change any result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import sys
import warnings
from pathlib import Path

from devtools.train_tiny.train import DEFAULT_STEPS, TrainSettings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.train_tiny",
        description="Train the tiny Qwen3.5-architecture model on Python's own documentation (CPU).",
    )
    parser.add_argument("out_dir", type=Path, help="checkpoint directory to write")
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"optimizer steps (default {DEFAULT_STEPS})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads; part of the recipe (default 2)"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.steps < 1:
        print("error: --steps must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # transformers warns that flash-linear-attention is missing: its torch fallback is intended.
    warnings.filterwarnings("ignore", message=".*fast path is not available.*")
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    from devtools.train_tiny.run import train_checkpoint

    settings = TrainSettings(steps=args.steps, seed=args.seed, threads=args.threads)
    try:
        log = train_checkpoint(args.out_dir, settings, replace=args.force)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    perplexity, minutes = log["held_out"]["perplexity"], log["total_seconds"] / 60
    print(f"{args.out_dir}: held-out perplexity {perplexity:.2f} in {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
