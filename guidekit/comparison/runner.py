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

Layout of ``out``: ``manifest.json`` (every option that changes a result; a rerun with other options
is refused), ``cells/<key>.json`` (one record per cell, written atomically: an interrupted run loses
at most the cells in flight), ``reference_stats.npz`` (the judge's reference statistics).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ..errors import InvalidParameterError
from ..io import SampleBatchWriter, atomic_write, to_uint8
from ..metrics import FeatureStats, frechet_distance
from ..metrics.precision_recall import _coverage, manifold_radii
from ..registry import create
from ..sampling import sample
from ..trace import GuidanceTrace
from .grid import Cell, canonical
from .reference import ReferenceStats

FORMAT_VERSION = 1
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
    reference: ReferenceStats
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

    @property
    def digest(self) -> str:
        import hashlib

        return hashlib.sha256(canonical(self.manifest).encode()).hexdigest()[:16]


#: manifest entries -> the options that set them, for the error on a rerun with other options
MANIFEST_FLAGS = {
    "model": "--model/--model-path", "diffusion": "--respacing", "sampler": "--sampler/--sampler-param",
    "num_samples": "--num-samples", "num_classes": "--classifier", "image_shape": "--model", "judge": "--judge",
    "reference": "--reference", "k": "--k", "pr_limit": "--pr-limit", "threshold": "--threshold",
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
    """The cached cell file for ``key`` if it exists and belongs to this manifest."""
    path = cell_path(ctx, key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # cannot happen with atomic writes; recompute rather than trust it
    if data.get("manifest") != ctx.digest:
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


def _precision_recall(ref: ReferenceStats, fake: np.ndarray, k: int, device: torch.device) -> tuple[float | None, float | None]:
    if len(ref.pool) <= k or len(fake) <= k:
        return None, None
    real = torch.from_numpy(ref.pool).float().to(device)
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


def compute(ctx: Context, cell: Cell | None, seed: int) -> dict[str, Any]:
    """Sample, judge and measure one cell (``cell=None``: unguided sampling for ``seed``); ``ctx.on_step()``,
    if set, is called after every sampling step."""
    started = time.perf_counter()
    guidance = None
    if cell is not None:
        guidance = make_guidance(ctx, cell, create("scaler", cell.scaler, **cell.params))
    stats, pools, vanish = FeatureStats(), [], []
    correct, judged = 0, 0
    norm_sum: torch.Tensor | None = None
    scale_sum: torch.Tensor | None = None
    t_list: list[int] = []
    c, h, w = ctx.shape
    name = cell.key if cell is not None else unguided_key(seed)
    keep = (SampleBatchWriter(ctx.out / "samples" / f"{name}.npz", ctx.num_samples, (h, w, c))
            if ctx.save_samples else contextlib.nullcontext())
    with keep as writer:  # the .npz appears only when the whole cell is sampled
        for start in range(0, ctx.num_samples, ctx.batch_size):
            count = min(ctx.batch_size, ctx.num_samples - start)
            y = labels_for(start, count, ctx.num_classes)
            trace = GuidanceTrace() if guidance is not None else None
            x0 = sample(ctx.model, ctx.diffusion, (count, *ctx.shape), sampler=ctx.sampler, guidance=guidance,
                        y=y, num_classes=ctx.num_classes, seed=seed, sample_offset=start,
                        callback=_step_callback(trace, ctx.on_step),
                           progress=False, device=ctx.device, clip_denoised=ctx.clip_denoised)
            images = to_uint8(x0.cpu())  # judged as saved: uint8, like the ADM evaluator
            for j in range(0, count, JUDGE_CHUNK):
                feats = ctx.judge.extract(images[j:j + JUDGE_CHUNK])
                pool = feats["pool"].detach().float().cpu()
                stats.update(pool)
                pools.append(pool.numpy())
                logits = feats["logits"].detach().cpu()
                if logits.shape[1] == ctx.num_classes:
                    correct += int((logits.argmax(1) == y[j:j + JUDGE_CHUNK]).sum())
                    judged += len(logits)
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
    fake = np.concatenate(pools)
    precision, recall = _precision_recall(ctx.reference, fake, ctx.k, ctx.device)
    v = torch.cat(vanish) if vanish else torch.zeros(0, dtype=torch.float64)
    vanishing: dict[str, Any] | None = {"threshold": ctx.threshold,
                                        "fraction": float(torch.isfinite(v).double().mean()) if v.numel() else 0.0,
                                        **_quantiles(v)}
    if cell is not None and cell.guidance != "classifier" and norm_sum is None:
        vanishing = None
    return {
        "accuracy": correct / judged if judged else None,
        "fd": frechet_distance(stats.mean, stats.cov, ctx.reference.mu, ctx.reference.sigma),
        "precision": precision,
        "recall": recall,
        "seconds": round(time.perf_counter() - started, 3),
        "vanishing": vanishing,
        "profile": {"t": t_list, "mean_guided_norm": [] if norm_sum is None else (norm_sum / ctx.num_samples).tolist(),
                    "mean_scale": [] if scale_sum is None else (scale_sum / ctx.num_samples).tolist()},
        "vanishing_t": [None if not math.isfinite(x) else x for x in v.tolist()],
    }


def _store(ctx: Context, key: str, spec: dict[str, Any], result: dict[str, Any]) -> None:
    with atomic_write(cell_path(ctx, key), "w") as fh:
        ident = ctx.classifier_ids.get(spec["classifier"]) if "classifier" in spec else None
        json.dump({"format": FORMAT_VERSION, "manifest": ctx.digest, "cell": spec, "classifier_id": ident, **result}, fh)


METRICS = ("accuracy", "fd", "precision", "recall", "seconds", "vanishing")


def record_of(cell: Cell, result: dict[str, Any], shared: str | None,
              guidance_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cell's results.json record; ``shared``: "unguided" / "neutral" when it reused another computation."""
    rec = {"classifier": cell.classifier, "scaler": cell.scaler, "params": dict(cell.params), "seed": cell.seed,
           **{m: result[m] for m in METRICS}, "guidance": cell.guidance}
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

    ``on_record(rows)`` is called after each computed cell with the rows finished so far.
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
        if cached is not None:
            results[key] = cached
        else:
            todo.append(key)
    if results:
        print(f"guidekit compare: {len(results)} of {len(jobs)} computations cached in {ctx.out}", file=sys.stderr)

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
    bar = progress(total=len(todo) * steps_per_cell, desc="compare", disable=not show_progress, unit="step")
    ctx.on_step = lambda: bar.update(1)
    try:
        for index, key in enumerate(todo, 1):
            cell, seed = jobs[key]
            spec = {"unguided": True, "seed": seed} if cell is None else cell.spec()
            bar.postfix = f"cell {index}/{len(todo)}: {_cell_label(cell, seed)}"
            results[key] = compute(ctx, cell, seed)
            _store(ctx, key, spec, results[key])
            if on_record is not None:
                on_record(rows())
    finally:
        bar.close()
        ctx.on_step = None
    return rows()
