"""Reference statistics for FD and precision/recall, computed once per judge and cached in the out dir.

The reference is an ADM-layout ``.npz`` (``--reference``; its precomputed ``mu``/``sigma`` are used for
FD when present, as the ADM evaluator does) or, for bundled models, the dataset named by the model
card (``guidekit.data.load_dataset``). Precision/recall use at most ``pr_limit`` reference images (a
seeded random subset) and their k-NN radii, which are computed once here instead of once per cell.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ..errors import InvalidParameterError
from ..io import atomic_write, to_uint8
from ..metrics import FeatureStats
from ..metrics.precision_recall import manifold_radii
from .grid import canonical

CACHE_FILE = "reference_stats.npz"


@attrs.frozen(eq=False)
class ReferenceStats:
    mu: np.ndarray
    sigma: np.ndarray
    pool: np.ndarray  # (N_pr, D) features for precision/recall
    radii: np.ndarray  # (N_pr,) squared k-th neighbour distances
    shape: tuple[int, ...] | None  # NHWC of the reference images (None if only statistics)


def describe_source(reference: str | Path | None, dataset: str | None) -> dict[str, Any]:
    """What identifies the reference in the manifest."""
    if reference is not None:
        p = Path(reference)
        if not p.is_file():
            raise InvalidParameterError(f"--reference {str(p)!r} does not exist; give an ADM-layout .npz batch")
        return {"reference": str(p.resolve()), "size": p.stat().st_size}
    if dataset is None:
        raise InvalidParameterError("no reference: give --reference FILE.npz (the model card names no dataset)")
    return {"dataset": dataset}


def _images(reference: str | Path | None, dataset: str | None) -> tuple[Any, tuple[int, ...] | None, Any]:
    """(iterator factory of image chunks, NHWC shape, batch) of the reference."""
    if reference is not None:
        from ..io import load_batch

        batch = load_batch(reference)
        return (lambda n: batch.iter_images(n)) if batch.has_images else None, batch.image_shape, batch
    images = _dataset_images(dataset)
    shape = (images.shape[0], images.shape[2], images.shape[3], images.shape[1])
    # quantised exactly as the samples are (guidekit.io.to_uint8), so both sides are judged alike
    return (lambda n: (to_uint8(images[i:i + n]) for i in range(0, len(images), n))), shape, None


@functools.lru_cache(maxsize=2)
def _dataset_images(name: str) -> torch.Tensor:
    """The images of a bundled dataset, float [-1, 1] NCHW (``guidekit.data.load_dataset``)."""
    from ..data import load_dataset

    return load_dataset(name).images


def reference_shape(reference: str | Path | None, dataset: str | None = None) -> tuple[int, ...] | None:
    """NHWC shape of the reference images (None when it has only statistics)."""
    if reference is None:
        if dataset is None:
            return None
        images = _dataset_images(dataset)
        return (images.shape[0], images.shape[2], images.shape[3], images.shape[1])
    from ..io import load_batch

    return load_batch(reference).image_shape


def load_or_compute(out: Path, source: dict[str, Any], judge_id: dict[str, Any], judge: Any,
                    reference: str | Path | None, dataset: str | None, *, batch_size: int, k: int,
                    pr_limit: int, device: torch.device) -> ReferenceStats:
    """Reference stats from ``out/reference_stats.npz`` when it matches, else computed and cached."""
    key = canonical({"source": source, "judge": judge_id, "k": k, "pr_limit": pr_limit})
    path = out / CACHE_FILE
    if path.is_file():
        with np.load(path, allow_pickle=False) as d:
            if str(d["key"]) == key:
                shape = tuple(int(v) for v in d["shape"]) if d["shape"].size else None
                return ReferenceStats(d["mu"], d["sigma"], d["pool"], d["radii"], shape)
    chunks, shape, batch = _images(reference, dataset)
    stats, pool = FeatureStats(), []
    if chunks is not None:
        from ..progress import progress

        total = -(-(shape[0] if shape else 0) // batch_size)
        for chunk in progress(chunks(batch_size), total=total, desc="reference features", unit="batch"):
            feats = judge.extract(chunk)["pool"].detach().float().cpu()
            stats.update(feats)
            pool.append(feats.numpy())
    if batch is not None and batch.mu is not None:
        mu, sigma = batch.mu, batch.sigma
        if pool and mu.shape[0] != pool[0].shape[1]:
            raise InvalidParameterError(
                f"the reference's precomputed mu/sigma have dimension {mu.shape[0]} but the judge gives "
                f"{pool[0].shape[1]}; use the judge that produced them (inception for ADM reference batches)")
    elif stats.count >= 2:
        mu, sigma = stats.mean, stats.cov
    else:
        raise InvalidParameterError("the reference needs at least 2 images (or precomputed mu/sigma) for FD")
    feats = np.concatenate(pool) if pool else np.zeros((0, mu.shape[0]), np.float32)
    if len(feats) > pr_limit:
        keep = np.sort(np.random.default_rng(0).choice(len(feats), pr_limit, replace=False))
        feats = feats[keep]
    radii = (manifold_radii(feats, k, device=device).cpu().numpy() if len(feats) > k
             else np.zeros(0, np.float32))
    with atomic_write(path) as fh:
        np.savez(fh, key=np.array(key), mu=mu, sigma=sigma, pool=feats, radii=radii,
                 shape=np.array(shape if shape else [], dtype=np.int64))
    return ReferenceStats(mu, sigma, feats, radii, shape)
