"""Shared helpers of the quantization tests: seeded prompts and PyTorch's logits (KL: logit_stats)."""

from __future__ import annotations

import numpy as np
import torch


def seeded_ids(n: int, seed: int = 7) -> np.ndarray:
    """[n] token ids below 500 (inside the tiny vocabulary), seeded."""
    return np.random.default_rng(seed).integers(0, 500, size=n, dtype=np.int64)


def reference_logits(reference, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return reference(torch.from_numpy(ids)[None]).logits[0].numpy()  # [T, V]
