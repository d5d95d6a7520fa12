"""The training loop: AdamW, linear warm-up then cosine decay, fp32, seeded, fixed thread count."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

DEFAULT_STEPS = 600


@dataclass(frozen=True)
class TrainSettings:
    steps: int = DEFAULT_STEPS
    seed: int = 0
    batch_size: int = 4
    context: int = 512  # tokens per training window: a whole tool-call dialogue fits in one
    peak_lr: float = 2e-3
    final_lr_ratio: float = 0.1  # the cosine ends at peak_lr × this
    warmup_steps: int = 30
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 100
    sample_tokens: int = 48  # length of the greedy samples recorded in the card
    vocab_size: int = 4096
    threads: int = 2  # part of the recipe: a different thread count changes fp32 sums, hence the weights
    max_documents: int | None = None  # a corpus slice, for tests
    dialogues: int = 1200  # synthetic chat and tool-call dialogues added to the training split
    model_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainHistory:
    losses: list[float] = field(default_factory=list)  # training loss per step
    learning_rates: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # {"step", "loss", "perplexity", ...}
    seconds: float = 0.0


@contextlib.contextmanager
def reproducible(seed: int, threads: int) -> Iterator[None]:
    """Seed torch, fix the thread count, insist on deterministic kernels; restore the old settings after."""
    old_threads, old_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_deterministic)


def learning_rate_factor(step: int, settings: TrainSettings) -> float:
    """Multiplier of peak_lr at `step` (0-based): linear warm-up, then cosine down to final_lr_ratio."""
    warmup = min(settings.warmup_steps, max(1, settings.steps // 10))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, settings.steps - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return settings.final_lr_ratio + (1.0 - settings.final_lr_ratio) * cosine


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW; matrices (and the conv kernels) decay, norms and the DeltaNet decay parameters do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": settings.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.peak_lr, betas=settings.betas)


def next_token_loss(model: torch.nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting windows[:, 1:] from windows[:, :-1] ([B, T + 1] int64)."""
    logits = model(input_ids=windows[:, :-1], use_cache=False).logits  # [B, T, V]
    return F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten())


def train(
    model: torch.nn.Module,
    batches: Iterator[torch.Tensor],
    settings: TrainSettings,
    evaluate: Callable[[], dict[str, Any]] | None = None,
) -> TrainHistory:
    """Run `settings.steps` optimizer steps; `evaluate` is called every eval_every steps and at the end."""
    optimizer = make_optimizer(model, settings)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, settings))
    history = TrainHistory()
    model.train()
    started = time.monotonic()
    for step in range(settings.steps):
        loss = next_token_loss(model, next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        history.learning_rates.append(float(schedule.get_last_lr()[0]))
        optimizer.step()
        schedule.step()
        history.losses.append(float(loss.detach()))
        _log_progress(step, settings.steps, history.losses, time.monotonic() - started)
        done = step + 1
        if evaluate is not None and (done % settings.eval_every == 0 or done == settings.steps):
            history.evaluations.append({"step": done, **evaluate()})
            logger.info("step %d: held-out %s", done, history.evaluations[-1])
    history.seconds = time.monotonic() - started
    return history


def _log_progress(step: int, steps: int, losses: list[float], elapsed: float) -> None:
    if step % 10 != 0 and step != steps - 1:
        return
    recent = losses[-10:]
    remaining = elapsed / (step + 1) * (steps - step - 1)
    logger.info(
        "step %d/%d loss %.4f (%.1f s elapsed, ~%.0f s left)",
        step + 1,
        steps,
        sum(recent) / len(recent),
        elapsed,
        remaining,
    )
