"""Fréchet distance between two Gaussians (FID / sFID), in float64 numpy, without scipy.

The ADM evaluator (``evaluations/evaluator.py``) computes
``‖μ1−μ2‖² + tr Σ1 + tr Σ2 − 2·tr sqrtm(Σ1·Σ2)`` with ``scipy.linalg.sqrtm``; when the product is
singular (sqrtm not finite) it adds ``eps·I`` to both covariances, and it raises when the result has an
imaginary part above 1e-3. Here ``tr sqrtm(Σ1Σ2)`` is computed from the symmetric matrix
``√Σ1·Σ2·√Σ1`` (same eigenvalues as Σ1Σ2) with ``numpy.linalg.eigh``: the sum of the square roots
of its eigenvalues. Tiny negative eigenvalues from round-off are clipped to 0; a negative eigenvalue
whose square root exceeds 1e-3 is the analogue of the reference's "imaginary component" error.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from guidekit.errors import GuidekitError, InvalidParameterError

#: the reference raises when |imag(sqrtm)| on the diagonal exceeds this
IMAGINARY_ATOL = 1e-3


class FrechetDistanceError(GuidekitError, ValueError):
    """The covariance product has no (real) square root: the inputs are not valid covariances."""


def _as_float64(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a numeric array, got {type(x).__name__}: {exc}") from exc
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(f"{name} contains NaN or inf; recompute the statistics from finite features")
    return arr


def _check_inputs(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> tuple[np.ndarray, ...]:
    m1 = np.atleast_1d(_as_float64(mu1, "mu1"))
    m2 = np.atleast_1d(_as_float64(mu2, "mu2"))
    s1 = np.atleast_2d(_as_float64(sigma1, "sigma1"))
    s2 = np.atleast_2d(_as_float64(sigma2, "sigma2"))
    for name, m in (("mu1", m1), ("mu2", m2)):
        if m.ndim != 1:
            raise InvalidParameterError(f"{name} must be a vector of shape (D,), got shape {m.shape}")
    if m1.shape != m2.shape:
        raise InvalidParameterError(
            f"mu1 and mu2 have different lengths: {m1.shape[0]} vs {m2.shape[0]}. Both statistics must "
            f"come from the same feature extractor and layer."
        )
    d = m1.shape[0]
    if d == 0:
        raise InvalidParameterError("mu1 and mu2 are empty (dimension 0); pass statistics of at least one feature")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise InvalidParameterError(
                f"{name} must have shape ({d}, {d}) to match the mean vectors, got {s.shape}"
            )
    return m1, s1, m2, s2


def _sqrt_psd(a: np.ndarray, name: str) -> np.ndarray:
    """Symmetric square root of a PSD matrix via eigh (round-off negatives clipped)."""
    w, v = np.linalg.eigh(a)
    scale = max(float(np.max(np.abs(w))), 1.0)
    if w.min() < -1e-6 * scale:
        raise FrechetDistanceError(
            f"{name} is not positive semi-definite (smallest eigenvalue {w.min():.3g}); pass a covariance "
            f"matrix such as np.cov(features, rowvar=False)"
        )
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> tuple[float, bool]:
    """``tr sqrtm(Σ1·Σ2)`` and whether the product is (numerically) singular."""
    s1 = (sigma1 + sigma1.T) / 2.0
    s2 = (sigma2 + sigma2.T) / 2.0
    root = _sqrt_psd(s1, "sigma1")
    m = root @ s2 @ root
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    top = float(np.max(np.abs(w))) if w.size else 0.0
    if w.min() < 0 and np.sqrt(-w.min()) > IMAGINARY_ATOL:
        raise FrechetDistanceError(
            f"sqrtm(sigma1 @ sigma2) has an imaginary component {np.sqrt(-w.min()):.3g} > {IMAGINARY_ATOL} "
            f"(as the ADM evaluator reports); sigma2 is probably not a valid covariance matrix"
        )
    singular = bool(w.min() <= w.size * np.finfo(np.float64).eps * top)
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None)))), singular


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Fréchet distance ``‖μ1−μ2‖² + tr Σ1 + tr Σ2 − 2·tr sqrtm(Σ1Σ2)`` between two Gaussians.

    Inputs are float64-converted numpy arrays or tensors: means of shape (D,), covariances (D, D).
    If ``Σ1Σ2`` is singular, ``eps·I`` is added to both covariances inside the square-root term,
    with a warning, as the ADM evaluator does.
    """
    if not (eps >= 0 and np.isfinite(eps)):
        raise InvalidParameterError(f"eps must be a finite number >= 0, got {eps!r}")
    m1, s1, m2, s2 = _check_inputs(mu1, sigma1, mu2, sigma2)
    diff = m1 - m2
    tr_covmean, singular = trace_sqrt_product(s1, s2)
    if singular and eps > 0:
        warnings.warn(
            f"fid calculation produces singular product; adding {eps} to diagonal of cov estimates",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(s1.shape[0]) * eps
        tr_covmean, _ = trace_sqrt_product(s1 + offset, s2 + offset)
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
