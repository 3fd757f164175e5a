"""Improved precision and recall (Kynkäänniemi et al. 2019), as the ADM evaluator computes them.

Each set's manifold is the union of balls around its points; a point's radius is its squared
Euclidean distance to its ``k``-th nearest neighbour, where the point itself is the 0-th neighbour
(index ``k`` of its sorted distance row, self included). Precision is the fraction of fake samples
inside at least one real ball (``dist² <= radius²``); recall is the fraction of real samples inside at
least one fake ball. Distances use ``‖a‖² − 2a·b + ‖b‖²`` clamped at 0 and are computed block by
block: radii keep a running ``k+1`` smallest per row, so no (N × M) matrix is ever formed.

The reference computes distances in float16 on the GPU (float32 fallback); here float32 by default
(``dtype=torch.float64`` for more accuracy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from guidekit.checks import check_positive_int
from guidekit.errors import InvalidParameterError

DEFAULT_BLOCK_SIZE = 4096


def _as_features(x: Any, name: str, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2 or t.shape[0] < 1:
        raise InvalidParameterError(f"{name} must have shape (N, D) with N >= 1, got {tuple(t.shape)}")
    t = t.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(t).all()):
        raise InvalidParameterError(f"{name} contains NaN or inf")
    return t


def _check_k_block(k: int, block_size: int) -> None:
    check_positive_int(k, "k")
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InvalidParameterError(f"block_size must be a positive integer, got {block_size!r}")


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise ``‖a_i − b_j‖²`` as ``‖a‖² − 2a·b + ‖b‖²``, clamped at 0 (the reference's formula)."""
    na = (a * a).sum(dim=1, keepdim=True)
    nb = (b * b).sum(dim=1, keepdim=True).T
    return (na - 2.0 * (a @ b.T) + nb).clamp_min_(0.0)


def manifold_radii(
    features: Any,
    k: int = 3,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Squared distance of each point to its ``k``-th neighbour, self counted as the 0-th: shape (N,)."""
    _check_k_block(k, block_size)
    x = _as_features(features, "features", dtype, device)
    n = x.shape[0]
    if k + 1 > n:
        raise InvalidParameterError(
            f"k={k} needs at least {k + 1} points (each point is its own 0-th neighbour), got {n}"
        )
    radii = torch.empty(n, dtype=dtype, device=x.device)
    for r0 in range(0, n, block_size):
        rows = x[r0 : r0 + block_size]
        best = torch.full((rows.shape[0], 0), float("inf"), dtype=dtype, device=x.device)
        for c0 in range(0, n, block_size):
            d = squared_distances(rows, x[c0 : c0 + block_size])
            merged = torch.cat([best, d], dim=1)
            best = torch.topk(merged, min(k + 1, merged.shape[1]), dim=1, largest=False, sorted=True).values
        radii[r0 : r0 + rows.shape[0]] = best[:, k]
    return radii


def _coverage(
    real: torch.Tensor, real_radii: torch.Tensor, fake: torch.Tensor, fake_radii: torch.Tensor, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fake inside any real ball, real inside any fake ball) as boolean vectors."""
    fake_in = torch.zeros(fake.shape[0], dtype=torch.bool, device=fake.device)
    real_in = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    for f0 in range(0, fake.shape[0], block_size):
        fb = fake[f0 : f0 + block_size]
        fr = fake_radii[f0 : f0 + block_size]
        for r0 in range(0, real.shape[0], block_size):
            d = squared_distances(fb, real[r0 : r0 + block_size])  # (fake block, real block)
            fake_in[f0 : f0 + fb.shape[0]] |= (d <= real_radii[None, r0 : r0 + block_size]).any(dim=1)
            real_in[r0 : r0 + d.shape[1]] |= (d <= fr[:, None]).any(dim=0)
    return fake_in, real_in


def precision_recall(
    real_features: Any,
    fake_features: Any,
    k: int = 3,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """``(precision, recall)`` of fake samples against real ones (ADM: reference batch vs samples).

    Features are (N, D) / (M, D) arrays or tensors. ``block_size`` bounds every distance block to
    ``block_size²`` entries.
    """
    _check_k_block(k, block_size)
    real = _as_features(real_features, "real_features", dtype, device)
    fake = _as_features(fake_features, "fake_features", dtype, real.device)
    if real.shape[1] != fake.shape[1]:
        raise InvalidParameterError(
            f"real and fake features have different dimensions ({real.shape[1]} vs {fake.shape[1]}); "
            f"extract both with the same extractor"
        )
    real_radii = manifold_radii(real, k, block_size=block_size, dtype=dtype)
    fake_radii = manifold_radii(fake, k, block_size=block_size, dtype=dtype)
    fake_in, real_in = _coverage(real, real_radii, fake, fake_radii, block_size)
    return float(fake_in.double().mean()), float(real_in.double().mean())
