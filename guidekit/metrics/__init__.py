"""Sample-quality metrics as the ADM evaluator computes them: FID, sFID, IS, precision, recall.

``evaluate(ref, samples, extractor)`` streams both batches through a feature extractor and returns
``{"fid", "sfid", "inception_score", "precision", "recall"}``. Reference statistics precomputed in
the reference ``.npz`` (``mu``/``sigma``, ``mu_s``/``sigma_s``) are used for FID/sFID when present, and
its ``arr_0`` images for precision/recall, exactly as the reference evaluator does. Numbers are only
comparable with published ones when the extractor is ``inception-v3`` with the published weights.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from guidekit.checks import check_positive_int
from guidekit.errors import InvalidParameterError

from .frechet import FrechetDistanceError, frechet_distance
from .inception_score import inception_score, inception_score_splits
from .kid import kernel_distance
from .precision_recall import manifold_radii, precision_recall
from .stats import FeatureStats

__all__ = [
    "FeatureStats",
    "FrechetDistanceError",
    "FeatureSet",
    "METRIC_NAMES",
    "evaluate",
    "extract_features",
    "frechet_distance",
    "inception_score",
    "inception_score_splits",
    "kernel_distance",
    "manifold_radii",
    "precision_recall",
]

METRIC_NAMES = ("fid", "sfid", "inception_score", "precision", "recall")


class FeatureSet:
    """What one pass over a batch yields: pool/spatial statistics, pool features, class probabilities."""

    def __init__(self) -> None:
        self.pool_stats = FeatureStats()
        self.spatial_stats = FeatureStats()
        self._pool: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []

    def add(self, feats: dict[str, torch.Tensor], keep_pool: bool, keep_probs: bool) -> None:
        missing = [k for k in ("pool", "spatial", "logits") if k not in feats]
        if missing:
            raise InvalidParameterError(f"the extractor's output lacks {missing}; it must return pool, spatial, logits")
        pool = feats["pool"].detach().float().cpu()
        self.pool_stats.update(pool)
        self.spatial_stats.update(feats["spatial"].detach().cpu())
        if keep_pool:
            self._pool.append(pool.numpy())
        if keep_probs:
            self._probs.append(torch.softmax(feats["logits"].detach().double().cpu(), dim=1).float().numpy())

    @property
    def pool(self) -> np.ndarray:
        return np.concatenate(self._pool) if self._pool else np.zeros((0, 0), np.float32)

    @property
    def probs(self) -> np.ndarray:
        return np.concatenate(self._probs) if self._probs else np.zeros((0, 0), np.float32)


def extract_features(
    batch: Any,
    extractor: Any,
    *,
    batch_size: int = 64,
    desc: str = "features",
    show_progress: bool | None = None,
    keep_pool: bool = True,
    keep_probs: bool = True,
) -> FeatureSet:
    """Stream the images of an ``NpzBatch`` (or a uint8 NHWC array) through ``extractor.extract``."""
    from guidekit.io import NpzBatch
    from guidekit.progress import progress

    check_positive_int(batch_size, "batch_size")
    if isinstance(batch, NpzBatch):
        total, chunks = batch.num_images, batch.iter_images(batch_size)
    else:
        arr = batch
        total = len(arr)
        chunks = (arr[i : i + batch_size] for i in range(0, total, batch_size))
    out = FeatureSet()
    bar = progress(chunks, total=-(-total // batch_size), desc=desc, disable=show_progress is False,
                   force=bool(show_progress), unit="batch")
    for chunk in bar:
        out.add(extractor.extract(chunk), keep_pool, keep_probs)
    return out


def _fd(name: str, mu: np.ndarray, sigma: np.ndarray, stats: FeatureStats, extractor_name: str) -> float:
    if mu.shape[0] != stats.dim:
        raise InvalidParameterError(
            f"the reference batch's precomputed {name} statistics have dimension {mu.shape[0]} but the "
            f"{extractor_name!r} extractor gives {stats.dim}; evaluate with the extractor that produced them "
            f"(inception-v3 for ADM reference batches) or use a reference batch without precomputed statistics"
        )
    return frechet_distance(stats.mean, stats.cov, mu, sigma)


def _hwc(shape: Any) -> str:
    _, h, w, c = shape
    return f"{h}×{w} {'grey' if c == 1 else 'RGB' if c == 3 else f'{c}-channel'}"


def check_comparable(ref_batch: Any, sample_batch: Any) -> None:
    """Refuse samples whose size or channels differ from the reference images (the extractor would
    resize or convert one of them and the metrics would silently compare unlike things)."""
    if ref_batch.has_images and sample_batch.has_images and ref_batch.image_shape[1:] != sample_batch.image_shape[1:]:
        raise InvalidParameterError(
            f"the samples are {_hwc(sample_batch.image_shape)} images but the reference "
            f"{str(ref_batch.path)!r} holds {_hwc(ref_batch.image_shape)}: the extractor would resize or convert "
            "one of them and the numbers would not compare like with like. Evaluate against a reference of the "
            "samples' size and channels"
        )


def evaluate(
    ref: Any,
    samples: Any,
    extractor: Any = "inception-v3",
    *,
    extractor_path: str | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    splits: int = 10,
    k: int = 3,
    show_progress: bool | None = None,
    pr_block_size: int = 4096,
) -> dict[str, float | None]:
    """FID, sFID, Inception Score, precision and recall of ``samples`` against ``ref``.

    ``ref`` and ``samples`` are ``.npz`` paths (ADM layout) or :class:`guidekit.io.NpzBatch` objects;
    ``extractor`` is an object with ``extract(images) -> {"pool", "spatial", "logits"}``, or the name of an
    ``"extractor"`` component, built with ``path=extractor_path`` and ``device`` (the device precision and
    recall are computed on, too). Precision and recall
    are ``None`` (with a warning) when the reference has no ``arr_0`` images, and so is ``sfid`` when it has
    neither images nor ``mu_s``/``sigma_s``. ``splits`` is capped at the
    number of samples (the reference uses 5,000-sample splits: ``splits=10`` for 50,000 samples).
    """
    from guidekit.devices import as_device
    from guidekit.io import NpzBatch, load_batch

    device = str(as_device(device, what="device"))  # a typo fails here, not after the features are extracted
    if isinstance(extractor, str):
        from guidekit.registry import create

        params: dict[str, Any] = {"device": device}
        if extractor_path is not None:
            params["path"] = str(extractor_path)
        extractor = create("extractor", extractor, **params)
    if not hasattr(extractor, "extract"):
        raise InvalidParameterError(f"extractor must have an extract(images) method, got {type(extractor).__name__}")
    ref_batch = ref if isinstance(ref, NpzBatch) else load_batch(ref)
    sample_batch = samples if isinstance(samples, NpzBatch) else load_batch(samples)
    if not sample_batch.has_images:
        raise InvalidParameterError(f"the sample batch {str(sample_batch.path)!r} has no 'arr_0' images to evaluate")
    if sample_batch.num_images < 2:
        raise InvalidParameterError("the sample batch needs at least 2 images for a covariance")
    check_comparable(ref_batch, sample_batch)
    name = str(getattr(extractor, "name", type(extractor).__name__))
    ref_name, ref_images = str(ref_batch.path), ref_batch.num_images
    if ref_images < 2 and (ref_batch.mu is None or (ref_images and ref_batch.mu_s is None)):
        raise InvalidParameterError(
            f"the reference batch {ref_name!r} has {ref_images} image(s) and no precomputed "
            f"{'mu/sigma' if ref_batch.mu is None else 'mu_s/sigma_s'}; its statistics need at least 2 images"
        )
    if ref_images:  # precision/recall: each point's k-th neighbour, itself counted as the 0-th
        for which, path, count in (("reference", ref_name, ref_images),
                                   ("sample", str(sample_batch.path), sample_batch.num_images)):
            if isinstance(k, (int, np.integer)) and count < k + 1:
                raise InvalidParameterError(
                    f"precision/recall with k={k} needs at least {k + 1} images in each batch, but the {which} "
                    f"batch {path!r} has {count}; lower k (--k) or use more images"
                )

    sample_feats = extract_features(sample_batch, extractor, batch_size=batch_size,
                                    desc="features (samples)", show_progress=show_progress)
    ref_feats = None
    if ref_images:
        ref_feats = extract_features(ref_batch, extractor, batch_size=batch_size, desc="features (reference)",
                                     show_progress=show_progress, keep_probs=False)

    def ref_stats(mu: np.ndarray | None, sigma: np.ndarray | None, which: str) -> tuple[np.ndarray, np.ndarray] | None:
        if mu is not None and sigma is not None:
            return mu, sigma
        if ref_feats is None:  # only mu_s/sigma_s can be missing here: the batch has mu/sigma or images
            warnings.warn(f"{ref_name!r} has neither 'arr_0' images nor {which} statistics: sfid is not computed",
                          RuntimeWarning, stacklevel=3)
            return None
        stats = ref_feats.pool_stats if which == "pool" else ref_feats.spatial_stats
        return stats.mean, stats.cov

    pool_ref = ref_stats(ref_batch.mu, ref_batch.sigma, "pool")
    spatial_ref = ref_stats(ref_batch.mu_s, ref_batch.sigma_s, "spatial (mu_s/sigma_s)")
    assert pool_ref is not None  # NpzBatch guarantees arr_0 or mu/sigma
    result: dict[str, float | None] = {
        "fid": _fd("pool (mu/sigma)", *pool_ref, sample_feats.pool_stats, name),
        "sfid": None if spatial_ref is None else _fd("spatial (mu_s/sigma_s)", *spatial_ref,
                                                     sample_feats.spatial_stats, name),
        "inception_score": inception_score(sample_feats.probs, splits=min(splits, sample_batch.num_images)),
        "precision": None,
        "recall": None,
    }
    if ref_feats is not None:
        result["precision"], result["recall"] = precision_recall(
            ref_feats.pool, sample_feats.pool, k=k, block_size=pr_block_size, device=device
        )
    else:
        warnings.warn(
            f"{str(ref_batch.path)!r} has no 'arr_0' images: precision and recall are not computed",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
