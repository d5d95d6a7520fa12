"""Random checkpoints of the real shapes, written tensor by tensor (4B and 9B do not fit in memory).

    python -m devtools.random_streamed bench/configs/qwen3_5-2b.json OUT_DIR [--seed 0]

`devtools.random_checkpoint.random_model` builds transformers' model with its own initialisation: right for
the tests, but 36 GB of fp32 at 9B. Here the parameter names and shapes come from the model built on
the meta device, and each tensor is drawn on its own from a generator seeded by (seed, index), with
the distributions transformers' `_init_weights` uses (plus the tests' perturbation of the norms), and
stored in bf16 like the published checkpoints, in shards of at most `shard_bytes` with an index.
Memory: one shard. The values differ from `random_model`'s for the same seed.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from devtools.byte_tokenizer import write_tokenizer

log = logging.getLogger(__name__)

INITIALIZER_RANGE = 0.02  # transformers' default std for Linear, Embedding and conv weights
NORM_PERTURBATION = 0.1  # as random_model: so the (1 + w) norms are exercised


def parameter_shapes(config: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every stored tensor of Qwen3_5ForCausalLM, tied head left out, in module order."""
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    with torch.device("meta"):
        model = Qwen3_5ForCausalLM(Qwen3_5TextConfig(**config))
    return [(name, tuple(p.shape)) for name, p in model.named_parameters()]  # tied weights appear once


def draw(name: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """One parameter's random values (fp32)."""
    if name.endswith(".A_log"):  # decay rates: log of U(0.01, 16), as transformers draws them
        return torch.empty(shape).uniform_(0.01, 16, generator=generator).log_()
    if name.endswith(".dt_bias"):
        return torch.ones(shape)
    noise = torch.randn(shape, generator=generator)
    if name.endswith("linear_attn.norm.weight"):  # the gated norm multiplies by w (ones at init)
        return 1.0 + noise * NORM_PERTURBATION
    if name.endswith("norm.weight"):  # zero-centred (1 + w) RMSNorms
        return noise * NORM_PERTURBATION
    return noise * INITIALIZER_RANGE


def _shards(
    shapes: list[tuple[str, tuple[int, ...]]], shard_bytes: int, itemsize: int
) -> Iterator[list[tuple[int, str, tuple[int, ...]]]]:
    shard: list[tuple[int, str, tuple[int, ...]]] = []
    size = 0
    for index, (name, shape) in enumerate(shapes):
        nbytes = math.prod(shape) * itemsize
        if shard and size + nbytes > shard_bytes:
            yield shard
            shard, size = [], 0
        shard.append((index, name, shape))
        size += nbytes
    if shard:
        yield shard


def write_streamed_checkpoint(
    out_dir: Path,
    config: dict[str, Any],
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    shard_bytes: int = 2 << 30,
) -> Path:
    """A sharded safetensors checkpoint with config, index and the test tokenizer; returns out_dir."""
    from safetensors.torch import save_file

    config = copy.deepcopy(config)
    shapes = parameter_shapes(config)
    itemsize = torch.empty((), dtype=dtype).element_size()
    shards = list(_shards(shapes, shard_bytes, itemsize))
    out_dir.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    total = 0
    with tqdm(total=len(shapes), desc="drawing weights", unit="tensor", disable=None, leave=False) as bar:
        for number, shard in enumerate(shards, start=1):
            file = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
            tensors = {}
            for position, name, shape in shard:
                generator = torch.Generator().manual_seed(seed * 1_000_003 + position)
                tensors[name] = draw(name, shape, generator).to(dtype)
                weight_map[name] = file
                total += tensors[name].nbytes
                bar.update()
            save_file(tensors, str(out_dir / file), metadata={"format": "pt"})
            del tensors
    index: dict[str, Any] = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_tokenizer(out_dir)
    log.info("wrote %s: %d tensors, %.2f GB in %d shards", out_dir, len(shapes), total / 1e9, len(shards))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """A random checkpoint of a config.json's shape (a text config or a full one with text_config)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devtools.random_streamed", description=main.__doc__)
    parser.add_argument("config", type=Path, help="a config.json, e.g. bench/configs/qwen3_5-2b.json")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = json.loads(args.config.read_text())
    except (OSError, ValueError) as err:
        print(f"error: cannot read {args.config}: {err}", file=sys.stderr)
        return 2
    config = config.get("text_config", config)
    config.pop("torch_dtype", None)
    write_streamed_checkpoint(args.out_dir, config, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
