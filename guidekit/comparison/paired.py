"""Paired statistics of each method against a baseline at each target accuracy (``paired.json``).

For seed s, a method and the baseline drew the same initial noise, the same per-step noise and the
same labels for every sample index, so their FDs differ only through the guidance. Per (method,
target accuracy, feature space) over the seeds where both reached the target:

* ``diff_mean``, ``diff_std``: mean and standard deviation (ddof = 1) over seeds of
  d_s = FD_method(s) − FD_baseline(s) (the records' FD values; negative: the method is closer);
* ``wins``: the number of seeds with d_s < 0, out of ``seeds``;
* ``ci95``: a paired bootstrap over samples. A replicate draws, for every seed independently, n
  sample indices uniformly with replacement (n = samples per cell) and uses the *same* indices for
  the method's and the baseline's samples of that seed; both FDs are recomputed from the resampled
  features against the fixed reference statistics (the reference images are not resampled); the
  replicate's value is the mean over seeds of the differences. ``ci95`` is the 2.5 and 97.5
  percentiles of ``replicates`` such values. Indices depend only on the seed and n, so every method
  is resampled alike and the baseline's replicates are shared.

A difference is *resolved* when ``ci95`` excludes 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InvalidParameterError

REPLICATES = 1000
BOOTSTRAP_SEED = 15  # the issue of the comparison protocol
CHUNK = 50


def draws(n: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, n) sample indices of one seed, the same for every cell of that seed."""
    return np.random.default_rng([BOOTSTRAP_SEED, int(seed), int(n)]).integers(0, n, size=(replicates, n))


def _sqrt_psd(sigma: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((sigma + sigma.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def bootstrap_fd(feats: np.ndarray, mu: np.ndarray, sigma: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """FD of ``feats[idx[b]]`` to the Gaussian (``mu``, ``sigma``) for every replicate b (float64)."""
    x = torch.from_numpy(np.asarray(feats, dtype=np.float64))
    mu_r = torch.from_numpy(np.asarray(mu, dtype=np.float64))
    sigma_r = torch.from_numpy(np.asarray(sigma, dtype=np.float64))
    root, trace_r = _sqrt_psd(sigma_r), torch.trace(sigma_r)
    out = []
    for start in range(0, len(idx), CHUNK):
        xb = x[torch.from_numpy(idx[start:start + CHUNK])]  # (c, n, d)
        mean = xb.mean(1)
        centred = xb - mean[:, None]
        cov = centred.transpose(1, 2) @ centred / (xb.shape[1] - 1)
        eig = torch.linalg.eigvalsh(root @ cov @ root)
        diff = mean - mu_r
        fd = (diff * diff).sum(1) + cov.diagonal(dim1=1, dim2=2).sum(1) + trace_r - 2 * eig.clamp(min=0).sqrt().sum(1)
        out.append(fd)
    return torch.cat(out).numpy()


def paired_row(method_fd: Sequence[float], baseline_fd: Sequence[float], method_boot: Sequence[np.ndarray],
               baseline_boot: Sequence[np.ndarray]) -> dict[str, Any]:
    """``diff_mean``, ``diff_std``, ``ci95``, ``wins``, ``seeds`` from per-seed FDs and their bootstrap replicates."""
    if not len(method_fd) == len(baseline_fd) == len(method_boot) == len(baseline_boot) or not method_fd:
        raise InvalidParameterError("paired statistics need the same seeds (at least one) for method and baseline")
    d = np.asarray(method_fd, dtype=float) - np.asarray(baseline_fd, dtype=float)
    reps = np.mean([np.asarray(m) - np.asarray(b) for m, b in zip(method_boot, baseline_boot)], axis=0)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return {"diff_mean": float(d.mean()), "diff_std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "ci95": [float(lo), float(hi)], "wins": int((d < 0).sum()), "seeds": len(d)}


def resolved(row: dict[str, Any]) -> bool:
    """The CI excludes 0."""
    lo, hi = row["ci95"]
    return lo > 0 or hi < 0


def paired_rows(records: Sequence[dict[str, Any]], baseline: str, method: Callable[[dict[str, Any]], str],
                boot: Callable[[dict[str, Any], str], np.ndarray]) -> list[dict[str, Any]]:
    """One row per (method ≠ baseline, target accuracy, feature space) of target-accuracy ``records``.

    ``method(record)`` names a record's method (``CLASSIFIER/SCALER``); ``boot(record, feature)`` gives
    its bootstrap FD replicates. Seeds where either side did not reach the target are left out.
    """
    cells: dict[tuple[str, float, int], dict[str, Any]] = {}
    methods: list[str] = []
    for r in records:
        if r.get("target_accuracy") is None:
            continue
        name = method(r)
        if name not in methods:
            methods.append(name)
        cells[(name, float(r["target_accuracy"]), int(r["seed"]))] = r
    targets = sorted({t for _, t, _ in cells})
    features = list(dict.fromkeys(f for r in cells.values() for f in (r.get("fd") or {})))
    rows = []
    for name in methods:
        if name == baseline:
            continue
        for target in targets:
            for feature in features:
                pairs = []
                for (m, t, seed), rec in cells.items():
                    base = cells.get((baseline, t, seed))
                    if m != name or t != target or base is None:
                        continue
                    a, b = (rec.get("fd") or {}).get(feature), (base.get("fd") or {}).get(feature)
                    if a is not None and b is not None:
                        pairs.append((rec, base))
                if not pairs:
                    continue
                stats = paired_row([p[0]["fd"][feature] for p in pairs], [p[1]["fd"][feature] for p in pairs],
                                   [boot(p[0], feature) for p in pairs], [boot(p[1], feature) for p in pairs])
                rows.append({"method": name, "target_accuracy": target, "feature": feature, **stats})
    return rows
