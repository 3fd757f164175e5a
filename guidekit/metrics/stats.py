"""Streaming mean and covariance of feature vectors (float64), for FID/sFID statistics.

Batches are combined with Chan et al.'s pairwise update (count, mean, centred sum of outer
products), which stays accurate when the mean is large relative to the spread. The result equals
``features.mean(0)`` and ``np.cov(features, rowvar=False)`` (ddof=1) of the concatenated batches,
whatever the chunking, up to float64 round-off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from guidekit.errors import InvalidParameterError


def _as_batch(batch: Any) -> np.ndarray:
    if hasattr(batch, "detach"):
        batch = batch.detach().cpu().double().numpy()
    try:
        x = np.asarray(batch, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"a feature batch must be a numeric (B, D) array, got {type(batch).__name__} "
                                    f"({exc})") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise InvalidParameterError(f"a feature batch must have shape (B, D) with D >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("the feature batch contains NaN or inf")
    return x


class FeatureStats:
    """Accumulates ``count``, ``mean`` and ``cov`` of (B, D) feature batches.

    ``stats.update(batch)`` adds a batch (numpy or torch); ``stats.merge(other)`` folds in another
    accumulator (e.g. from another process). ``dim`` is fixed by the first batch unless given.
    """

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and (not isinstance(dim, (int, np.integer)) or dim < 1):
            raise InvalidParameterError(f"dim must be a positive integer, got {dim!r}")
        self.dim = None if dim is None else int(dim)
        self._n = 0
        self._mean = None if dim is None else np.zeros(self.dim)
        self._m2 = None if dim is None else np.zeros((self.dim, self.dim))

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        if self.dim is None:
            self.dim = mean_b.shape[0]
        elif mean_b.shape[0] != self.dim:
            raise InvalidParameterError(
                f"feature dimension {mean_b.shape[0]} does not match the accumulator's {self.dim}"
            )
        if n_b == 0:
            return
        if self._n == 0:
            self._n, self._mean, self._m2 = n_b, mean_b.copy(), m2_b.copy()
            return
        n = self._n + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (self._n * n_b / n)
        self._n = n

    def update(self, batch: Any) -> FeatureStats:
        """Add a (B, D) batch of features; returns ``self``."""
        x = _as_batch(batch)
        if x.shape[0] == 0:
            if self.dim is not None and x.shape[1] != self.dim:
                raise InvalidParameterError(
                    f"feature dimension {x.shape[1]} does not match the accumulator's {self.dim}"
                )
            return self
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        self._combine(x.shape[0], mean_b, centred.T @ centred)
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Fold another accumulator into this one; returns ``self``."""
        if not isinstance(other, FeatureStats):
            raise InvalidParameterError(f"can only merge a FeatureStats, got {type(other).__name__}")
        if other._n > 0:
            self._combine(other._n, other._mean, other._m2)
        return self

    @property
    def count(self) -> int:
        """Number of feature vectors seen."""
        return self._n

    @property
    def mean(self) -> np.ndarray:
        """The (D,) float64 mean."""
        if self._n == 0:
            raise InvalidParameterError("FeatureStats is empty: call update() with at least one batch first")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """The (D, D) float64 covariance with ``np.cov(rowvar=False)`` semantics (ddof=1)."""
        if self._n < 2:
            raise InvalidParameterError(f"a covariance needs at least 2 feature vectors, got {self._n}")
        return self._m2 / (self._n - 1)

    def __repr__(self) -> str:
        return f"FeatureStats(dim={self.dim}, count={self._n})"
