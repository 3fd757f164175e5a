"""Kernel Inception Distance (Bińkowski et al., 2018): unbiased MMD² with a cubic polynomial kernel.

``k(x, y) = (x·y / d + 1)³`` on d-dimensional features, and the unbiased estimator

    MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j),

computed on all the features (no subsets), in float64. Unlike FD it has no bias that depends on the
number of samples (its expectation is the population MMD², 0 for equal distributions), so values
at a few hundred samples are comparable with values at thousands; it can be slightly negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from guidekit.errors import InvalidParameterError


def _features(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu().double()
    if t.ndim != 2 or len(t) < 2:
        raise InvalidParameterError(f"{name} must be (N, D) features with N >= 2, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise InvalidParameterError(f"{name} contains NaN or inf")
    return t


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(x·y / d + 1)³`` for every pair of rows."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_distance(real: Any, fake: Any) -> float:
    """Unbiased MMD² between ``real`` (M, D) and ``fake`` (N, D) features with the KID kernel."""
    x, y = _features(real, "real"), _features(fake, "fake")
    if x.shape[1] != y.shape[1]:
        raise InvalidParameterError(f"real and fake features differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())
