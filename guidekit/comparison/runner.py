"""Running the grid: paired-seed sampling, judging, and an on-disk cache of one file per cell.

Paired seeds: sample i of every cell with seed s starts from the same x_T and gets the same per-step
noise (``gk.sample`` draws both from the generator of (s, i)), and asks for the same label
``y_i = i mod K``; so two cells differ only by their guidance. A cell whose scale is zero by
construction (γ = 0 of a scaler proportional to γ) samples exactly what unguided sampling does, so
with ``dedupe`` those cells share one unguided computation per seed; their records say so
(``"shared": "unguided"``). Under other guidances the neutral scale (``guidance.neutral``: w = 1 for
classifier-free guidance) plays that part: a cell whose scaler gives the neutral scale at every step
(γ = neutral of ``constant``, ``interval``, ``timestep``) is the same computation as ``constant`` at
γ = neutral under the same guidance, and shares it (``"shared": "neutral"``).

Layout of ``out``: ``manifest.json`` (every option that changes the samples or their features; a
rerun with other options is refused), and per computation under ``cells/``: ``<key>.json`` (accuracy,
vanishing points, seconds), ``<key>.npz`` (every sample's features in every feature space), and
``<key>.m-<reference id>.json`` (FD, KID, precision and recall against one reference, identified by
its content sha256 and the feature spaces); ``pilot-<key>-n<P>.json`` holds the accuracy of the first
P samples (the bisection of ``--target-accuracy``). Everything is written atomically and found again
by content: an interrupted run loses at most the cell in flight, the same command again computes
nothing, and another reference recomputes the metrics from the stored features without sampling.
Every cached file is checked when it is read back (``guidekit.comparison.cache``): a damaged or
replaced one is computed again alone. With ``--save-samples``, ``samples/<key>.npz`` holds each
cell's images; a cached cell whose images were not kept is sampled again for them (the same seeds
give the same images), its record kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ..errors import InvalidParameterError
from ..identity import file_sha256
from ..io import SampleBatchWriter, atomic_write, to_uint8
from ..metrics import FeatureStats, frechet_distance
from ..metrics.kid import kernel_distance
from ..metrics.precision_recall import _coverage, manifold_radii
from ..registry import create
from ..sampling import sample
from ..trace import GuidanceTrace
from .cache import features_intact, read_json, read_npz, warn_damaged, write_json
from .grid import Cell, canonical
from .reference import JUDGE_SPACE, SpaceStats

FORMAT_VERSION = 2
#: scalers whose scale is γ times something finite, so γ = 0 is no guidance at all
ZERO_AT_ZERO_GAMMA = ("constant", "timestep", "gradnorm", "entropy")
JUDGE_CHUNK = 250


#: scalers that give γ at every step when γ is the guidance's neutral scale (whatever their other parameters)
NEUTRAL_AT_NEUTRAL_GAMMA = ("constant", "timestep", "interval")


def is_unguided(cell: Cell) -> bool:
    """True when the cell's scale is 0 at every step by construction (γ = 0, see ZERO_AT_ZERO_GAMMA)."""
    if cell.guidance != "classifier" or cell.params.get("gamma") != 0:
        return False
    if cell.scaler == "interval":
        return float(cell.params.get("outside", 0.0)) == 0.0
    return cell.scaler in ZERO_AT_ZERO_GAMMA


def neutral_cell(cell: Cell, neutral: float | None) -> Cell | None:
    """For a guidance other than ``classifier``: the ``constant`` cell at the neutral scale when ``cell``'s
    scaler gives the neutral scale at every step by construction, so both sample the same bits; else None.
    ``neutral=None``: the guidance's output may depend on more than the scale values (no sharing)."""
    gamma = cell.params.get("gamma")
    if neutral is None or cell.guidance == "classifier" or gamma is None or float(gamma) != neutral:
        return None
    if cell.scaler not in NEUTRAL_AT_NEUTRAL_GAMMA:
        return None
    outside = cell.params.get("outside")
    if cell.scaler == "interval" and outside is not None and float(outside) != neutral:
        return None
    return Cell(cell.classifier, "constant", {"gamma": float(neutral)}, cell.seed, cell.guidance)


def labels_for(start: int, count: int, num_classes: int) -> torch.Tensor:
    """The requested labels of samples start..start+count-1: y_i = i mod K (the same in every cell)."""
    return torch.arange(start, start + count, dtype=torch.int64) % num_classes


@attrs.define
class Context:
    """What every cell shares (built once by :func:`guidekit.comparison.compare`)."""

    out: Path
    manifest: dict[str, Any]
    model: Any
    diffusion: Any
    sampler: Any
    classifiers: dict[str, Any]
    classifier_ids: dict[str, Any]
    judge: Any
    #: {label: extractor} of every feature space, the judge's (``oracle``) first
    spaces: dict[str, Any]
    shape: tuple[int, int, int]
    num_classes: int
    num_samples: int
    batch_size: int
    device: torch.device
    k: int = 3
    threshold: float = 0.1
    save_samples: bool = False
    clip_denoised: bool = True
    guidance_params: dict[str, Any] = attrs.Factory(dict)
    #: the guidance's neutral scale, or None when cells at it must not share (see :func:`neutral_cell`)
    neutral: float | None = None
    #: called after every sampling step of :func:`compute` (``run_cells`` sets it for its progress line)
    on_step: Callable[[], None] | None = None
    #: {label: SpaceStats} of the reference, and what identifies it (content sha256 + feature spaces)
    reference: dict[str, SpaceStats] = attrs.Factory(dict)
    reference_id: str = ""
    reference_sha256: str = ""
    #: {label: extractor name} of every feature space (records' ``features``)
    feature_names: dict[str, str] = attrs.Factory(dict)

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical(self.manifest).encode()).hexdigest()[:16]


#: manifest entries -> the options that set them, for the error on a rerun with other options
MANIFEST_FLAGS = {
    "model": "--model/--model-path", "diffusion": "--respacing", "sampler": "--sampler/--sampler-param",
    "num_samples": "--num-samples", "num_classes": "--classifier", "image_shape": "--model", "judge": "--judge",
    "features": "--judge/--features", "k": "--k", "pr_limit": "--pr-limit", "threshold": "--threshold",
    "clip_denoised": "--clip-denoised", "guidance": "--guidance/--guidance-param",
}


def check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write ``out/manifest.json``, or check that the one there matches (else a clear error)."""
    path = out / "manifest.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None and canonical(old) == canonical(json.loads(canonical(manifest))):
            return
        diff = sorted(k for k in set(old or {}) | set(manifest)
                      if canonical((old or {}).get(k)) != canonical(manifest.get(k)))
        raise InvalidParameterError(
            f"{out} holds a comparison run with other options (differing: "
            f"{', '.join(f'{k} ({MANIFEST_FLAGS[k]})' if k in MANIFEST_FLAGS else k for k in diff) or 'unreadable manifest'}); "
            "its cells would not be comparable. Use a new --out folder, or delete this one to start over")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True, default=str)


def cell_path(ctx: Context, key: str) -> Path:
    return ctx.out / "cells" / f"{key}.json"


def load_cell(ctx: Context, key: str) -> dict[str, Any] | None:
    """The cached cell file for ``key`` if it exists, is intact and belongs to this manifest."""
    path = cell_path(ctx, key)
    data = read_json(path)
    if data is None or data.get("manifest") != ctx.digest:
        return None
    if data.get("key", key) != key:  # another cell's file copied over this one
        warn_damaged(path, f"it holds the cell {data.get('key')}")
        return None
    label = data.get("cell", {}).get("classifier")
    if label is not None and canonical(data.get("classifier_id")) != canonical(ctx.classifier_ids.get(label)):
        raise InvalidParameterError(
            f"{path} was computed with classifier {label!r} = {data.get('classifier_id')}, but this run gives "
            f"{ctx.classifier_ids.get(label)}; use a new --out folder (or another classifier name)")
    return data


def unguided_key(seed: int) -> str:
    return f"unguided-s{seed}"


def make_guidance(ctx: Context, cell: Cell, scaler: Any) -> Any:
    """The cell's guidance component, with its classifier (if it takes one) and the run's guidance params."""
    from ..registry import create

    clf = {} if cell.classifier is None else {"classifier": ctx.classifiers[cell.classifier]}
    return create("guidance", cell.guidance, scaler=scaler, **clf, **ctx.guidance_params)


def shared_job(ctx: Context, cell: Cell, dedupe: bool) -> tuple[str, Cell | None, str | None]:
    """(cache key, cell to compute or None for unguided sampling, shared label or None) of ``cell``."""
    if dedupe and is_unguided(cell):
        return unguided_key(cell.seed), None, "unguided"
    canon = neutral_cell(cell, ctx.neutral) if dedupe else None
    if canon is not None and canon != cell:
        return canon.key, canon, "neutral"
    return cell.key, cell, None


def _precision_recall(ref: SpaceStats, fake: np.ndarray, k: int, device: torch.device) -> tuple[float | None, float | None]:
    if len(ref.feats) <= k or len(fake) <= k:
        return None, None
    real = torch.from_numpy(ref.feats).float().to(device)
    fake_t = torch.from_numpy(fake).float().to(device)
    fake_radii = manifold_radii(fake_t, k)
    fake_in, real_in = _coverage(real, torch.from_numpy(ref.radii).to(device), fake_t, fake_radii, 4096)
    return float(fake_in.double().mean()), float(real_in.double().mean())


def _quantiles(v: torch.Tensor) -> dict[str, float | None]:
    finite = v[torch.isfinite(v)]
    if finite.numel() == 0:
        return {"mean_t": None, "median_t": None, "q10_t": None, "q90_t": None}
    q = torch.quantile(finite, torch.tensor([0.5, 0.1, 0.9], dtype=torch.float64)).tolist()
    return {"mean_t": float(finite.mean()), "median_t": q[0], "q10_t": q[1], "q90_t": q[2]}


def _batches(ctx: Context, guidance: Any, seed: int, count: int,
             on_step: Callable[[], None] | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, Any]]:
    """(start, labels, uint8 NHWC images, trace) of the first ``count`` samples of ``seed``, batch by batch;
    ``on_step()``, if given, is called after every sampling step."""
    for start in range(0, count, ctx.batch_size):
        n = min(ctx.batch_size, count - start)
        y = labels_for(start, n, ctx.num_classes)
        trace = GuidanceTrace() if guidance is not None else None
        x0 = sample(ctx.model, ctx.diffusion, (n, *ctx.shape), sampler=ctx.sampler, guidance=guidance,
                    y=y, num_classes=ctx.num_classes, seed=seed, sample_offset=start,
                    callback=_step_callback(trace, on_step), progress=False, device=ctx.device,
                    clip_denoised=ctx.clip_denoised)
        yield start, y, to_uint8(x0.cpu()), trace  # judged as saved: uint8, like the ADM evaluator


def _guidance_of(ctx: Context, cell: Cell | None) -> Any:
    return None if cell is None else make_guidance(ctx, cell, create("scaler", cell.scaler, **cell.params))


def _correct(ctx: Context, logits: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    if logits.shape[1] != ctx.num_classes:
        return 0, 0
    return int((logits.argmax(1) == y).sum()), len(logits)


def pilot_accuracy(ctx: Context, cell: Cell | None, seed: int, count: int) -> float | None:
    """Judge accuracy of the first ``count`` samples of the cell (the same samples the full cell starts with)."""
    guidance = _guidance_of(ctx, cell)
    correct, judged = 0, 0
    for _, y, images, _ in _batches(ctx, guidance, seed, count):
        for j in range(0, len(images), JUDGE_CHUNK):
            c, n = _correct(ctx, ctx.judge.extract(images[j:j + JUDGE_CHUNK])["logits"].detach().cpu(),
                            y[j:j + JUDGE_CHUNK])
            correct, judged = correct + c, judged + n
    return correct / judged if judged else None


def compute(ctx: Context, cell: Cell | None, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Sample and judge one cell (``cell=None``: unguided sampling for ``seed``): (result, features per space);
    ``ctx.on_step()``, if set, is called after every sampling step."""
    started = time.perf_counter()
    guidance = _guidance_of(ctx, cell)
    pools: dict[str, list[np.ndarray]] = {label: [] for label in ctx.spaces}
    vanish = []
    correct, judged = 0, 0
    norm_sum: torch.Tensor | None = None
    scale_sum: torch.Tensor | None = None
    t_list: list[int] = []
    c, h, w = ctx.shape
    name = cell.key if cell is not None else unguided_key(seed)
    keep = (SampleBatchWriter(samples_path(ctx, name), ctx.num_samples, (h, w, c))
            if ctx.save_samples else contextlib.nullcontext())
    with keep as writer:  # the .npz appears only when the whole cell is sampled
        for _, y, images, trace in _batches(ctx, guidance, seed, ctx.num_samples, ctx.on_step):
            for j in range(0, len(images), JUDGE_CHUNK):
                chunk = images[j:j + JUDGE_CHUNK]
                for label, extractor in ctx.spaces.items():
                    feats = extractor.extract(chunk)
                    pools[label].append(feats["pool"].detach().float().cpu().numpy())
                    if label == JUDGE_SPACE:
                        n_ok, n = _correct(ctx, feats["logits"].detach().cpu(), y[j:j + JUDGE_CHUNK])
                        correct, judged = correct + n_ok, judged + n
            if writer is not None:
                writer.add(images, y)
            if trace is not None and trace.t:
                t_list = trace.t
                scales = trace.tensor("scale").sum(1)
                scale_sum = scales if scale_sum is None else scale_sum + scales
                if trace.has("guided_norm"):  # a guidance without a gradient (CFG) has no vanishing point
                    vanish.append(trace.vanishing_points(ctx.threshold))
                    norms = trace.tensor("guided_norm").sum(1)
                    norm_sum = norms if norm_sum is None else norm_sum + norms
    v = torch.cat(vanish) if vanish else torch.zeros(0, dtype=torch.float64)
    vanishing: dict[str, Any] | None = {"threshold": ctx.threshold,
                                        "fraction": float(torch.isfinite(v).double().mean()) if v.numel() else 0.0,
                                        **_quantiles(v)}
    if cell is not None and cell.guidance != "classifier" and norm_sum is None:
        vanishing = None
    result = {
        "accuracy": correct / judged if judged else None,
        "seconds": round(time.perf_counter() - started, 3),
        "vanishing": vanishing,
        "profile": {"t": t_list, "mean_guided_norm": [] if norm_sum is None else (norm_sum / ctx.num_samples).tolist(),
                    "mean_scale": [] if scale_sum is None else (scale_sum / ctx.num_samples).tolist()},
        "vanishing_t": [None if not math.isfinite(x) else x for x in v.tolist()],
    }
    return result, {label: np.concatenate(p) for label, p in pools.items()}


def measure(ctx: Context, feats: dict[str, np.ndarray]) -> dict[str, Any]:
    """FD and KID in every feature space the reference has, precision/recall in the judge's."""
    import warnings

    fd, kid = {}, {}
    for label, ref in ctx.reference.items():
        if label not in feats:
            continue
        stats = FeatureStats().update(feats[label])
        with warnings.catch_warnings():  # the ADM evaluator's eps fix-up warns; the value is what it computes
            warnings.simplefilter("ignore", RuntimeWarning)
            fd[label] = frechet_distance(stats.mean, stats.cov, ref.mu, ref.sigma)
        kid[label] = kernel_distance(ref.feats, feats[label]) if len(ref.feats) >= 2 else None
    judge_ref = ctx.reference.get(JUDGE_SPACE)
    precision, recall = (_precision_recall(judge_ref, feats[JUDGE_SPACE], ctx.k, ctx.device)
                         if judge_ref is not None else (None, None))
    return {"fd": fd, "kid": kid, "precision": precision, "recall": recall}


def _store(ctx: Context, key: str, spec: dict[str, Any], result: dict[str, Any], feats: dict[str, np.ndarray]) -> str:
    """Write the cell's features and its ``.json``; returns the sha256 of the features file."""
    for stale in ctx.out.glob(f"cells/{key}.[mb]-*"):  # metrics and bootstraps of features computed before
        stale.unlink()
    path = features_path(ctx, key)
    with atomic_write(path) as fh:  # the features first: a cell's .json implies its .npz
        np.savez_compressed(fh, **feats)
    ident = ctx.classifier_ids.get(spec["classifier"]) if "classifier" in spec else None
    digest = file_sha256(path)
    write_json(cell_path(ctx, key), {"format": FORMAT_VERSION, "manifest": ctx.digest, "key": key, "cell": spec,
                                     "classifier_id": ident, "features_sha256": digest, **result})
    return digest


def features_path(ctx: Context, key: str) -> Path:
    return ctx.out / "cells" / f"{key}.npz"


def samples_path(ctx: Context, key: str) -> Path:
    """Where ``--save-samples`` keeps the images of computation ``key``."""
    return ctx.out / "samples" / f"{key}.npz"


def _check_resampled(ctx: Context, key: str, feats: dict[str, np.ndarray]) -> None:
    """Warn when the images sampled again for ``--save-samples`` are not the ones the cached cell measured."""
    measured = load_features(features_path(ctx, key))[JUDGE_SPACE]
    now = feats[JUDGE_SPACE]
    if measured.shape != now.shape or not np.allclose(measured, now, rtol=1e-4, atol=1e-4):
        gap = float(np.abs(measured - now).max()) if measured.shape == now.shape else float("inf")
        print(f"guidekit compare: warning: the images saved in {samples_path(ctx, key)} differ from those its cached "
              f"results measured (judge features differ by up to {gap:.3g}; sampled on another device or with "
              "another --batch-size?); the results are of the measured ones", file=sys.stderr)


def load_features(path: Path) -> dict[str, np.ndarray]:
    """The features of a cell, ``{space: (N, D) array}``, CRC-checked; a damaged file is a named error."""
    from ..errors import IdentityError

    feats = read_npz(path)
    if feats is None:
        raise IdentityError(f"{path} is missing or damaged; run the guidekit compare command of its folder again "
                            "(it computes that cell again, alone)")
    return feats


def metrics_of(ctx: Context, key: str, features_sha256: str | None = None) -> dict[str, Any]:
    """The cell's metrics against this run's reference, from its cache file (if measured on the features of
    sha256 ``features_sha256``) or from its stored features."""
    path = ctx.out / "cells" / f"{key}.m-{ctx.reference_id}.json"
    cached = read_json(path)
    if cached is not None:
        measured_on = cached.pop("features_sha256", features_sha256)
        if measured_on == features_sha256:
            return cached
        warn_damaged(path, "it was measured on other features than the cell's")
    result = measure(ctx, load_features(features_path(ctx, key)))
    write_json(path, {**result, **({"features_sha256": features_sha256} if features_sha256 else {})})
    return result


def _measured(ctx: Context, key: str, features_sha256: str | None) -> dict[str, Any]:
    return {**metrics_of(ctx, key, features_sha256), "features": dict(ctx.feature_names),
            "reference_sha256": ctx.reference_sha256, "cell": key}


def pilot_of(ctx: Context, cell: Cell, count: int, dedupe: bool = True) -> float | None:
    """Cached :func:`pilot_accuracy` (shared like full cells: γ = 0 is the unguided pilot)."""
    key, job, _ = shared_job(ctx, cell, dedupe)
    path = ctx.out / "cells" / f"pilot-{key}-n{count}.json"
    data = read_json(path)
    if data is not None and data.get("manifest") == ctx.digest and "accuracy" in data:
        if (data.get("key", key), data.get("samples")) == (key, count):
            return data["accuracy"]
        warn_damaged(path, f"it holds the pilot of {data.get('key')} on {data.get('samples')} samples")
    acc = pilot_accuracy(ctx, job, cell.seed, count)
    write_json(path, {"format": FORMAT_VERSION, "manifest": ctx.digest, "key": key, "accuracy": acc, "samples": count,
                      "cell": cell.spec()})
    return acc


METRICS = ("accuracy", "fd", "kid", "precision", "recall", "seconds", "vanishing")


def record_of(cell: Cell, result: dict[str, Any], shared: str | None,
              guidance_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cell's results.json record; ``shared``: "unguided" / "neutral" when it reused another computation."""
    rec = {"classifier": cell.classifier, "scaler": cell.scaler, "params": dict(cell.params), "seed": cell.seed,
           **{m: result.get(m) for m in METRICS}, "guidance": cell.guidance}
    for extra in ("features", "reference_sha256", "cell"):
        if extra in result:
            rec[extra] = result[extra]
    if guidance_params:
        rec["guidance_params"] = dict(guidance_params)
    if shared:
        rec["shared"] = shared
    return rec


Row = tuple[Cell, dict[str, Any], "str | None"]


def _step_callback(trace: Any, on_step: Callable[[], None] | None) -> Callable[[Any], None] | None:
    """The trace's callback, followed by ``on_step()`` when given."""
    if on_step is None:
        return trace

    def callback(info: Any) -> None:
        if trace is not None:
            trace(info)
        on_step()

    return callback


def _cell_label(cell: Cell | None, seed: int) -> str:
    """``entropy gamma=2 seed 1`` (or ``unguided seed 0``) for the progress line."""
    if cell is None:
        return f"unguided seed {seed}"
    params = " ".join(f"{k}={v}" for k, v in sorted(cell.params.items()))
    who = f"{cell.classifier} " if cell.classifier else ""
    return f"{who}{cell.scaler} {params} seed {seed}".replace("  ", " ")


def run_cells(ctx: Context, cells: list[Cell], *, dedupe: bool = True, show_progress: bool = True,
              on_record: Callable[[list[Row]], None] | None = None) -> list[Row]:
    """(cell, result, shared) for ``cells`` in grid order, computing only what is not cached.

    ``result`` holds the cell's sampling results, its metrics against ``ctx.reference`` and
    ``cell`` (the cache key of its computation). ``on_record(rows)`` is called after each computed
    cell with the rows finished so far.
    """
    from ..progress import progress

    jobs: dict[str, tuple[Cell | None, int]] = {}
    for cell in cells:
        key, job, _ = shared_job(ctx, cell, dedupe)
        jobs.setdefault(key, (job, cell.seed))
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for key in jobs:
        cached = load_cell(ctx, key)
        if cached is not None and features_intact(cached, features_path(ctx, key)):
            results[key] = {**cached, **_measured(ctx, key, cached.get("features_sha256"))}
        else:
            todo.append(key)
    if results:
        print(f"guidekit compare: {len(results)} of {len(jobs)} computations cached in {ctx.out}", file=sys.stderr)
    # --save-samples: cached cells whose images were not kept are sampled again for them (their records stay)
    resample = [key for key in results if ctx.save_samples and not samples_path(ctx, key).is_file()]
    if resample:
        print(f"guidekit compare: --save-samples: sampling {len(resample)} cached computation(s) again for their "
              f"images, which an earlier run did not keep (the same seeds give the same images; the results are "
              f"kept): {', '.join(resample)}", file=sys.stderr)

    def rows() -> list[Row]:
        out = []
        for cell in cells:
            key, _, shared = shared_job(ctx, cell, dedupe)
            if key in results:
                out.append((cell, results[key], shared))
        return out

    # counted in sampling steps, so the line moves (and the time left is estimated) inside long cells;
    # off a terminal (a log file) it writes one line per interval ($GUIDEKIT_PROGRESS_INTERVAL)
    steps_per_cell = math.ceil(ctx.num_samples / ctx.batch_size) * ctx.diffusion.num_steps
    work = len(todo) + len(resample)
    bar = progress(total=work * steps_per_cell, desc="compare", disable=not show_progress, unit="step")
    ctx.on_step = lambda: bar.update(1)
    try:
        for index, key in enumerate(todo, 1):
            cell, seed = jobs[key]
            spec = {"unguided": True, "seed": seed} if cell is None else cell.spec()
            bar.postfix = f"cell {index}/{work}: {_cell_label(cell, seed)}"
            result, feats = compute(ctx, cell, seed)
            results[key] = {**result, **_measured(ctx, key, _store(ctx, key, spec, result, feats))}
            if on_record is not None:
                on_record(rows())
        for index, key in enumerate(resample, len(todo) + 1):
            cell, seed = jobs[key]
            bar.postfix = f"cell {index}/{work}: {_cell_label(cell, seed)} (its samples)"
            _, feats = compute(ctx, cell, seed)
            _check_resampled(ctx, key, feats)
    finally:
        bar.close()
        ctx.on_step = None
    return rows()
