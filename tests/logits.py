"""Shared helpers of the quantization tests: seeded prompts, PyTorch's logits, KL between two sets."""

from __future__ import annotations

import numpy as np
import torch


def seeded_ids(n: int, seed: int = 7) -> np.ndarray:
    """[n] token ids below 500 (inside the tiny vocabulary), seeded."""
    return np.random.default_rng(seed).integers(0, 500, size=n, dtype=np.int64)


def reference_logits(reference, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return reference(torch.from_numpy(ids)[None]).logits[0].numpy()  # [T, V]


def kl(ref_logits: np.ndarray, logits: np.ndarray) -> float:
    """Mean KL(reference || logits) over positions, in float64."""
    ref = torch.log_softmax(torch.from_numpy(ref_logits).double(), -1)
    out = torch.log_softmax(torch.from_numpy(logits.astype(np.float32)).double(), -1)
    return float((ref.exp() * (ref - out)).sum(-1).mean())
