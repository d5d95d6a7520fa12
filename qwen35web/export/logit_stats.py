"""Comparing logits, defined once for `--validate`, the tests and the bench: in float64, numpy only."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """logits [..., V] (any float dtype) -> log-probabilities [..., V] in float64."""
    wide = np.asarray(logits, dtype=np.float64)
    shifted = wide - wide.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def mean_kl(reference_logits: np.ndarray, logits: np.ndarray) -> float:
    """Mean over positions of KL(reference || logits), in nats; both [..., V]."""
    reference, other = log_softmax(reference_logits), log_softmax(logits)
    return float((np.exp(reference) * (reference - other)).sum(axis=-1).mean())
