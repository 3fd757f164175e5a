"""The reference of FD, KID and precision/recall: real images, identified by the sha256 of their content.

The reference is an ADM-layout ``.npz`` (``--reference``; by default the held-out batch a bundled
model's card names) or, for a card that names only a data set, that data set's images
(``guidekit.data.load_dataset``). Its identity is the sha256 of the file's bytes (of the uint8 image
bytes and shape for a data set), never its path or size: a file replaced by another of the same size
is another reference. Per feature space the statistics (mean and covariance for FD, at most
``pr_limit`` features for KID and precision/recall, their k-NN radii) are computed once and cached
under ``out/reference/``, keyed by that sha256 and the feature space's identity (a damaged cache file is
computed again). Precomputed ``mu``/``sigma`` in the file are used for the judge's FD, as the ADM
evaluator does. The held-out batch a card names is checked against the sha256 the card records.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ..errors import IdentityError, InvalidParameterError
from ..io import atomic_write, to_uint8
from ..metrics import FeatureStats
from ..metrics.precision_recall import manifold_radii
from .cache import read_npz
from .grid import canonical
from .split import sha256_file

CACHE_DIR = "reference"
#: the feature space of the judge itself (its ``pool`` features)
JUDGE_SPACE = "oracle"


@attrs.frozen(eq=False)
class SpaceStats:
    """The reference in one feature space."""

    mu: np.ndarray
    sigma: np.ndarray
    feats: np.ndarray  # (N_pr, D): at most pr_limit features, for KID and precision/recall
    radii: np.ndarray  # (N_pr,) squared k-th neighbour distances (precision/recall)


@attrs.frozen(eq=False)
class Source:
    """Where the reference images come from, and their content identity."""

    path: Path | None
    dataset: str | None
    sha256: str
    shape: tuple[int, ...] | None  # NHWC of the images (None when the file holds only statistics)

    def describe(self) -> dict[str, Any]:
        where = {"path": str(self.path)} if self.path is not None else {"dataset": self.dataset}
        return {"sha256": self.sha256, "images": self.shape[0] if self.shape else 0, **where}

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """The images, uint8 NHWC, ``size`` at a time (quantised exactly as samples are)."""
        if self.path is not None:
            from ..io import load_batch

            batch = load_batch(self.path)
            if batch.has_images:
                yield from batch.iter_images(size)
            return
        images = _dataset_images(self.dataset)
        for i in range(0, len(images), size):
            yield to_uint8(images[i:i + size]).numpy()

    def precomputed(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The file's ``mu``/``sigma`` (for the judge's features), if it has them."""
        if self.path is None:
            return None
        from ..io import load_batch

        batch = load_batch(self.path)
        return (batch.mu, batch.sigma) if batch.mu is not None else None


@functools.lru_cache(maxsize=2)
def _dataset_images(name: str) -> torch.Tensor:
    """The images of a bundled dataset, float [-1, 1] NCHW (``guidekit.data.load_dataset``)."""
    from ..data import load_dataset

    return load_dataset(name).images


def _file_source(p: Path) -> Source:
    from ..io import load_batch

    return Source(p.resolve(), None, sha256_file(p), load_batch(p).image_shape)


def open_source(reference: str | Path | None, dataset: str | None) -> Source:
    """The reference file (or data set) with its content sha256 and image shape."""
    if reference is not None:
        p = Path(reference)
        if p.is_dir():
            raise InvalidParameterError(f"--reference {str(p)!r} is a folder; give the ADM-layout .npz batch file")
        if not p.is_file():
            raise InvalidParameterError(f"--reference {str(p)!r} does not exist; give an ADM-layout .npz batch")
        return _file_source(p)
    if dataset is None:
        raise InvalidParameterError("no reference: give --reference FILE.npz (the model card names no held-out batch "
                                    "and no data set)")
    images = to_uint8(_dataset_images(dataset)).numpy()
    digest = hashlib.sha256(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return Source(None, dataset, digest.hexdigest(), tuple(images.shape))


def card_source(card: Mapping[str, Any], model: str) -> Source:
    """The held-out reference a model card names (``card["reference_batch"]``), checked against the sha256 its
    ``split`` records: a missing, damaged or replaced file is a named error, never another reference."""
    p = Path(card["reference_batch"])
    heldout = (card.get("split") or {}).get("heldout") if isinstance(card.get("split"), Mapping) else None
    expected = heldout.get("sha256") if isinstance(heldout, Mapping) else None
    if not p.is_file():
        raise IdentityError(f"the held-out reference {str(p)!r} that the card of {model} names is missing: the "
                            f"installation that ships {model} is incomplete; reinstall it, or give --reference "
                            "FILE.npz")
    source = _file_source(p)
    if expected and source.sha256 != expected:
        raise IdentityError(f"the held-out reference {str(p)!r} of {model} has sha256 {source.sha256[:16]}… but its "
                            f"card records {str(expected)[:16]}…: the file was damaged or replaced, and FD/KID against "
                            f"it would not be against the held-out images; reinstall what ships {model}, or give "
                            "--reference FILE.npz")
    return source


def check_neighbours(source: Source, k: int, pr_limit: int) -> None:
    """Precision/recall with ``k`` needs ``k + 1`` reference images (of at most ``pr_limit``): else a named error,
    as ``guidekit evaluate`` gives, rather than precision and recall written as null."""
    count = source.shape[0] if source.shape else 0
    used = min(count, pr_limit)
    if count and used < k + 1:
        where = str(source.path or source.dataset)
        raise InvalidParameterError(
            f"precision/recall with k={k} (--k) needs at least {k + 1} reference images, but the reference "
            f"{where!r} has {count}" + (f" and --pr-limit keeps {pr_limit}" if pr_limit < count else "")
            + "; lower --k" + (", raise --pr-limit" if pr_limit < count else "") + " or give a larger reference")


def check_precomputed(source: Source, judge: str, dim: int, others: list[str]) -> None:
    """A reference without images: its ``mu``/``sigma`` must have the judge's feature dimension ``dim`` (a named
    error before any sampling), and what it cannot give (KID, precision/recall, the ``others`` feature
    spaces) is said once on stderr."""
    if source.shape:
        return
    pre = source.precomputed()
    if pre is not None and pre[0].shape[0] != dim:
        raise InvalidParameterError(
            f"the reference {str(source.path)!r} holds precomputed mu/sigma of dimension {pre[0].shape[0]} and no "
            f"images, but the judge {judge!r} gives {dim}-dimensional features: use the judge that produced them "
            "(--judge inception for ADM reference batches), or a reference with images")
    lost = ["KID", "precision/recall", *(f"the {label} feature space" for label in others)]
    print(f"guidekit compare: warning: the reference {str(source.path)!r} holds precomputed mu/sigma but no images: "
          f"FD in the judge's features only; {', '.join(lost)} are not computed (give a reference with images)",
          file=sys.stderr)


def reference_fingerprints(source: Source) -> np.ndarray | None:
    """Fingerprints of the reference images (:func:`guidekit.comparison.split.fingerprints`); None without images."""
    from .split import fingerprints

    if not source.shape:
        return None
    return np.concatenate([fingerprints(chunk) for chunk in source.chunks(1000)])


def _cache_path(out: Path, source: Source, space_id: Any, k: int, pr_limit: int) -> tuple[Path, str]:
    key = canonical({"reference": source.sha256, "space": space_id, "k": k, "pr_limit": pr_limit})
    return out / CACHE_DIR / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz", key


def cached_stats(out: Path, sha256: str, space_id: Any, k: int, pr_limit: int) -> SpaceStats | None:
    """The cached reference of one feature space in a finished run folder (None when it is not there)."""
    key = canonical({"reference": sha256, "space": space_id, "k": k, "pr_limit": pr_limit})
    d = read_npz(out / CACHE_DIR / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz")  # damaged: computed again
    if d is None or not {"key", "mu", "sigma", "feats", "radii"} <= set(d) or str(d["key"]) != key:
        return None
    return SpaceStats(d["mu"], d["sigma"], d["feats"], d["radii"])


def space_stats(out: Path, source: Source, label: str, space_id: Any, extractor: Any, *, batch_size: int, k: int,
                pr_limit: int, device: torch.device) -> SpaceStats | None:
    """The reference in one feature space, from the cache when it matches, else computed and cached.

    None when the reference holds no images and (for a feature space other than the judge's) no statistics.
    """
    cached = cached_stats(out, source.sha256, space_id, k, pr_limit)
    if cached is not None:
        return cached
    path, key = _cache_path(out, source, space_id, k, pr_limit)
    stats, pool = FeatureStats(), []
    if source.shape:
        from ..progress import progress

        total = -(-source.shape[0] // batch_size)
        for chunk in progress(source.chunks(batch_size), total=total, desc=f"reference features ({label})", unit="batch"):
            feats = extractor.extract(chunk)["pool"].detach().float().cpu()
            stats.update(feats)
            pool.append(feats.numpy())
    pre = source.precomputed() if label == JUDGE_SPACE else None
    if pre is not None:
        mu, sigma = pre
        if pool and mu.shape[0] != pool[0].shape[1]:
            raise InvalidParameterError(
                f"the reference's precomputed mu/sigma have dimension {mu.shape[0]} but the judge gives "
                f"{pool[0].shape[1]}; use the judge that produced them (inception for ADM reference batches)")
    elif stats.count >= 2:
        mu, sigma = stats.mean, stats.cov
    elif label != JUDGE_SPACE and not source.shape:
        return None
    else:
        raise InvalidParameterError("the reference needs at least 2 images (or precomputed mu/sigma) for FD")
    feats = np.concatenate(pool) if pool else np.zeros((0, mu.shape[0]), np.float32)
    if len(feats) > pr_limit:
        keep = np.sort(np.random.default_rng(0).choice(len(feats), pr_limit, replace=False))
        feats = feats[keep]
    radii = (manifold_radii(feats, k, device=device).cpu().numpy() if len(feats) > k
             else np.zeros(0, np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        np.savez(fh, key=np.array(key), mu=mu, sigma=sigma, feats=feats, radii=radii)
    return SpaceStats(mu, sigma, feats, radii)


def load_stats(out: Path, source: Source, spaces: Mapping[str, tuple[Any, Any]], *, batch_size: int, k: int,
               pr_limit: int, device: torch.device) -> dict[str, SpaceStats]:
    """``{label: SpaceStats}`` for every feature space ``{label: (identity, extractor)}`` the reference allows."""
    out_stats = {}
    for label, (space_id, extractor) in spaces.items():
        stats = space_stats(out, source, label, space_id, extractor, batch_size=batch_size, k=k, pr_limit=pr_limit,
                            device=device)
        if stats is not None:
            out_stats[label] = stats
    return out_stats
