"""Inception Score from class probabilities, as the ADM evaluator computes it.

Per split: ``exp(mean_i KL(p(y|x_i) ‖ p(y)))`` with ``p(y)`` the split's mean prediction; the score
is the mean over splits (the reference reports no standard deviation). The reference cuts 50,000
samples into 5,000-sample splits, which is what ``splits=10`` gives for 50,000 samples; pass
``split_size=5000`` to cut exactly like the reference for any N. ``0·log 0`` is taken as 0 (the
reference would give NaN for an exactly-zero probability).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from guidekit.checks import check_positive_int
from guidekit.errors import InvalidParameterError

#: tolerance on the row sums of the probability matrix (float32 softmax outputs pass easily)
ROW_SUM_ATOL = 1e-3


def _as_probs(probs: Any) -> np.ndarray:
    if hasattr(probs, "detach"):
        probs = probs.detach().cpu().double().numpy()
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise InvalidParameterError(f"probs must have shape (N, K) with N, K >= 1, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise InvalidParameterError("probs contains NaN or inf")
    if p.min() < 0:
        raise InvalidParameterError(
            f"probs has negative entries (min {p.min():.3g}); pass softmax probabilities, not logits"
        )
    sums = p.sum(axis=1)
    bad = np.abs(sums - 1.0) > ROW_SUM_ATOL
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidParameterError(
            f"every row of probs must sum to 1 (row {i} sums to {sums[i]:.6g}); apply softmax to the logits first"
        )
    return p


def _split_bounds(n: int, splits: int, split_size: int | None) -> list[tuple[int, int]]:
    if split_size is not None:
        if not isinstance(split_size, (int, np.integer)) or split_size < 1:
            raise InvalidParameterError(f"split_size must be a positive integer, got {split_size!r}")
        return [(i, min(i + int(split_size), n)) for i in range(0, n, int(split_size))]
    check_positive_int(splits, "splits")
    if splits > n:
        raise InvalidParameterError(f"splits={splits} is larger than the number of samples ({n}); use splits <= {n}")
    edges = np.linspace(0, n, int(splits) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def inception_score_splits(probs: Any, splits: int = 10, *, split_size: int | None = None) -> np.ndarray:
    """Per-split scores ``exp(mean KL(p(y|x) ‖ p(y)))`` (float64 array of length ``splits``).

    ``probs`` is an (N, K) torch tensor or array of class probabilities. With ``split_size`` the
    samples are cut into consecutive chunks of that size (the last may be shorter), as the reference does;
    otherwise into ``splits`` near-equal consecutive parts.
    """
    p = _as_probs(probs)
    scores = []
    for a, b in _split_bounds(p.shape[0], splits, split_size):
        part = p[a:b]
        marginal = part.mean(axis=0, keepdims=True)
        safe = np.where(part > 0, part, 1.0)
        kl = np.where(part > 0, part * (np.log(safe) - np.log(np.where(part > 0, marginal, 1.0))), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return np.asarray(scores, dtype=np.float64)


def inception_score(probs: Any, splits: int = 10, *, split_size: int | None = None) -> float:
    """Inception Score: the mean of :func:`inception_score_splits` (the ADM evaluator's number)."""
    return float(np.mean(inception_score_splits(probs, splits, split_size=split_size)))
