"""``gk.compare``: guidance strategies side by side at matched accuracy, with paired seeds.

A scaler that raises the effective scale (EDS: s ≥ γ) wins any single-γ comparison on accuracy and
loses on diversity; so methods are compared at the *same judge accuracy*: with ``targets`` (CLI
``--target-accuracy``) the γ reaching each target is found by bisection for every method and seed
and the metrics are measured there; with a γ grid the metrics are interpolated along each γ curve.
The same initial and per-step noise and the same labels are used for the same sample index in
every cell, so differences against a baseline are paired (``paired.json``: mean ± std over seeds,
bootstrap CI over samples, sign count). FD and KID are measured in the judge's features and in
feature spaces that learnt no classes (a pixel PCA for the bundled data sets), against a held-out
reference identified by its content and checked against the training splits the cards record.
Any guidance kind can be swept (``guidance="classifier-free"`` with a class-conditional model, its
scale w swept as γ); several runs go on one frontier with :func:`guidekit.comparison.merge.merge_runs`.
See :mod:`guidekit.comparison.runner` for the cache layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ..checks import check_flag, is_integer
from ..errors import IdentityError, InvalidParameterError
from ..io import atomic_write
from . import models, reference
from .cache import features_intact, read_json, read_npz, warn_damaged
from .features import feature_spaces, identity
from .grid import Cell, build_cells, build_sweeps, canonical
from .matched import method_name, method_of, sweep_value
from .paired import REPLICATES, bootstrap_fd, draws, paired_rows
from .report import mark_incomplete, write_outputs
from .runner import Context, Row, check_manifest, load_features, record_of, run_cells
from .split import OVERRIDE_FLAG, ReferenceOverlapError, check_reference, sha256_file

__all__ = ["CompareResult", "compare", "Cell", "ReferenceOverlapError", "cell_bootstrap", "write_outputs"]


@attrs.frozen(eq=False)
class CompareResult:
    """What :func:`compare` returns: one record per cell (as in ``results.json``), the accuracy levels of the
    matched table, that table as Markdown (also in ``matched_accuracy.md``) and the output folder."""

    records: list[dict[str, Any]]
    levels: list[float]
    table: str
    out: Path
    paired: dict[str, Any] | None = None


def _file_id(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(f"{str(p)!r} does not exist")
    return {"path": str(p.resolve()), "sha256": sha256_file(p)}


def _net_id(name: str, path: str | Path | None, net: Any) -> dict[str, Any]:
    ident: dict[str, Any] = {"name": name}
    if path is not None:
        ident.update(_file_id(path))
    elif models.card_of(net).get("sha256"):
        ident["sha256"] = models.card_of(net)["sha256"]
    return ident


def _literal_params(pairs: Sequence[str], what: str) -> dict[str, Any]:
    from .grid import _literal

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"--{what} expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = _literal(value)
    return params


def _seeds(seeds: int | str | Sequence[int]) -> list[int]:
    """A count (3: seeds 0, 1, 2) or a list of seeds; a string is read as on the command line ("3", "0,1,2")."""
    given = seeds
    if isinstance(seeds, str):
        try:
            seeds = int(seeds) if "," not in seeds else [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            seeds = None
    if is_integer(seeds):
        if seeds < 1:
            raise InvalidParameterError(f"--seeds must be >= 1 (the number of seeds) or a list such as 0,1,2; got {seeds}")
        return list(range(int(seeds)))
    items = list(seeds) if hasattr(seeds, "__iter__") and not isinstance(seeds, str) else None
    if items is None or not all(is_integer(s) for s in items):
        raise InvalidParameterError(f"--seeds takes a count (3) or a list of integer seeds (0,1,2), got {given!r}")
    out = [int(s) for s in items]
    if not out or len(set(out)) != len(out):
        raise InvalidParameterError(f"--seeds must list distinct seeds, got {out}")
    return out


def _numbers(values: Any, what: str) -> list[float] | None:
    """``values`` as floats: a sequence, one number, or a comma-separated string as on the command line."""
    if values is None:
        return None
    items = ([v for v in values.split(",") if v.strip()] if isinstance(values, str)
             else [values] if isinstance(values, (int, float, np.number)) else values)
    try:
        if isinstance(items, (bool, np.bool_)) or any(isinstance(v, (bool, np.bool_)) for v in items):
            raise TypeError
        return [float(v) for v in items]
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{what} takes accuracies such as 0.8,0.9,0.95 (a list, a number or a "
                                    f"comma-separated string), got {values!r}") from None


def _classifier_labels(names: Sequence[str], paths: Sequence[str | Path | None]) -> list[str]:
    """Names as given; a name used twice (two checkpoints of one architecture) gets @<file stem>."""
    labels = [n if names.count(n) == 1 or p is None else f"{n}@{Path(p).stem}" for n, p in zip(names, paths)]
    if len(set(labels)) != len(labels):
        raise InvalidParameterError(f"--classifier names {list(names)} repeat with the same checkpoint; give each once")
    return labels


def _targets(targets: Sequence[float] | None) -> list[float] | None:
    if targets is None:
        return None
    out = [float(t) for t in targets]
    if not out or not all(0 < t <= 1 for t in out) or len(set(out)) != len(out):
        raise InvalidParameterError(f"--target-accuracy takes distinct accuracies in (0, 1] such as 0.8,0.9,0.95, "
                                    f"got {list(targets)}")
    return sorted(out)


def _reference_id(source: reference.Source, spaces: Mapping[str, Any], k: int, pr_limit: int) -> str:
    key = canonical({"reference": source.sha256, "spaces": {label: sp.ident for label, sp in spaces.items()},
                     "k": k, "pr_limit": pr_limit})
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _check_overlap(source: reference.Source, roles: list[tuple[str, Any]], allow: bool) -> tuple[dict[str, int], list[str]]:
    """Training images of any carded network or feature space in the reference: refused unless ``allow``.
    Returns the images found per role and the roles whose card records no training split (not checked: said
    on stderr and recorded in results.json)."""
    cards = [(role, card) for role, card in roles if isinstance(card, dict) and isinstance(card.get("split"), dict)]
    unchecked = [role for role, card in roles if (role, card) not in cards]
    where = f"the reference {source.path or source.dataset}"
    if unchecked and source.shape:
        print(f"guidekit compare: note: {', '.join(unchecked)} record(s) no training split (card['split']), so whether "
              f"{where} holds their training images is not checked", file=sys.stderr)
    if not cards:
        return {}, unchecked
    found = check_reference(reference.reference_fingerprints(source), cards, allow=allow, where=where)
    if any(found.values()):  # allowed: said here and recorded in results.json
        print(f"guidekit compare: warning: {where} overlaps training data ({found}); measured anyway "
              f"({OVERRIDE_FLAG})", file=sys.stderr)
    return found, unchecked


def cell_bootstrap(out: Path, record: dict[str, Any], feature: str, reference_id: str, ref: Any,
                   replicates: int) -> np.ndarray:
    """The bootstrap FD replicates of a record's cell in run folder ``out`` (:mod:`.paired`), cached beside it
    (a damaged cache file is computed again; damaged features are a named error)."""
    key = record["cell"]
    path = out / "cells" / f"{key}.b-{reference_id}-{feature}-{replicates}.npz"
    features = out / "cells" / f"{key}.npz"
    cell = read_json(out / "cells" / f"{key}.json") or {}
    source = cell.get("features_sha256")  # what the replicates are computed from
    cached = read_npz(path)
    if cached is not None and "values" in cached and str(cached.get("features", "")) == str(source or ""):
        return cached["values"]
    if cached is not None:
        warn_damaged(path, "it was computed from other features than the cell's")
    if not features_intact(cell, features):
        raise IdentityError(f"{features} (the features of a cell of {out}) is missing, damaged or replaced; run "
                            f"the guidekit compare command of {out} again: it computes that cell again, alone")
    feats = load_features(features)[feature]
    values = bootstrap_fd(feats, ref.mu, ref.sigma, draws(len(feats), replicates, record["seed"]))
    with atomic_write(path) as fh:
        np.savez(fh, values=values, features=np.array(source or ""))
    return values


def _bootstrap(ctx: Context, replicates: int) -> Any:
    """``boot(record, feature)`` of this run (see :func:`cell_bootstrap`)."""
    return lambda record, feature: cell_bootstrap(ctx.out, record, feature, ctx.reference_id,
                                                  ctx.reference[feature], replicates)


def compare(
    model: str,
    classifiers: Sequence[str] | None,
    scalers: Sequence[str] | Mapping[str, Sequence[float]],
    *,
    out: str | Path,
    guidance: str = "classifier",
    guidance_params: Sequence[str] | Mapping[str, Any] = (),
    scaler_params: Sequence[str] = (),
    seeds: int | Sequence[int] = 3,
    num_samples: int = 1000,
    respacing: str | None = None,
    sampler: str | None = None,
    sampler_params: Sequence[str] | Mapping[str, Any] = (),
    model_path: str | Path | None = None,
    classifier_paths: Sequence[str | Path | None] = (),
    judge: str = "mnist16-oracle",
    judge_weights: str | Path | None = None,
    reference_batch: str | Path | None = None,
    features: Sequence[str] | Mapping[str, Any] | None = None,
    allow_reference_overlap: bool = False,
    targets: Sequence[float] | None = None,
    pilot_samples: int = 200,
    bisect_steps: int = 6,
    tolerance: float = 0.01,
    baseline: str | None = None,
    bootstrap: int = REPLICATES,
    batch_size: int = 500,
    device: str | torch.device = "auto",
    k: int = 3,
    pr_limit: int = 10000,
    threshold: float = 0.1,
    accuracy_levels: Sequence[float] | None = None,
    save_samples: bool = False,
    dedupe: bool = True,
    plots: bool = True,
    show_progress: bool = True,
    clip_denoised: bool = True,
) -> CompareResult:
    """Compare guidance methods at matched judge accuracy and write the comparison into ``out``.

    ``scalers``: ``["constant:0,1,2", "entropy:0,0.5,1"]`` (or ``{"constant": [0, 1, 2]}``): a γ grid per
    scaler; with ``targets`` (``[0.8, 0.9, 0.95]``) the γ values are the bracketing ladder of the search
    instead (``"constant"`` alone: the default ladder 0, 1, 2, 4, ..., 64), the γ reaching each target is
    found by bisection on the first ``pilot_samples`` samples of each seed (at most ``bisect_steps``
    halvings, stopping within ``tolerance``), and every record says its ``target_accuracy`` and the
    ``params`` found. ``scaler_params``: ``["interval.end=700"]``; ``classifier_paths`` in the order of
    ``classifiers``. ``guidance``: a registered guidance (default ``classifier``); one without a
    classifier (``classifier-free``, ``cfg-rescale``, ``apg``) takes ``classifiers=None`` and a
    class-conditional model, whose real labels (below the null label) are requested as y_i = i mod K.
    ``guidance_params``: ``["phi=0.7"]`` or ``{"phi": 0.7}``, the same for every cell.

    ``reference_batch``: the real images of FD/KID/precision/recall (default: the held-out batch the
    model card names); one that shares images with the training split of the model, a classifier,
    the judge or a feature space (as their cards record it) raises
    :class:`~guidekit.comparison.split.ReferenceOverlapError` unless ``allow_reference_overlap``.
    ``features``: the feature spaces besides the judge's (``["pca=mnist16-pca"]``; default: the judge
    card's ``features``). ``baseline``: ``CLASSIFIER/SCALER`` of ``paired.json`` (default: the first
    classifier, or the guidance, with ``constant``); ``bootstrap``: its replicates.
    Cached cells in ``out`` are reused (the same call twice computes nothing the second time).
    """
    from ..devices import resolve_device
    from ..guidance import ScaledGuidance, takes_classifier
    from ..registry import create
    from .targets import ladders, search_all

    if isinstance(scalers, Mapping):
        scalers = [f"{n}:{','.join(str(g) for g in gs)}" if gs else n for n, gs in scalers.items()]
    scalers = [scalers] if isinstance(scalers, str) else scalers  # one sweep given as "constant:0,1,2"
    classifiers = [classifiers] if isinstance(classifiers, str) else classifiers
    classifier_paths = [classifier_paths] if isinstance(classifier_paths, (str, Path)) else classifier_paths
    features = [features] if isinstance(features, str) else features
    for flag, value in (("allow_reference_overlap", allow_reference_overlap), ("save_samples", save_samples),
                        ("dedupe", dedupe), ("plots", plots), ("show_progress", show_progress),
                        ("clip_denoised", clip_denoised)):
        check_flag(value, flag)
    for label, number in (("tolerance", tolerance), ("threshold", threshold)):
        if isinstance(number, (bool, np.bool_)) or not isinstance(number, (int, float, np.number)):
            raise InvalidParameterError(f"{label} must be a number, got {number!r}")
    if reference_batch is not None and not isinstance(reference_batch, (str, os.PathLike)):
        raise InvalidParameterError(f"reference_batch must be the path of an .npz batch, got {reference_batch!r}")
    if baseline is not None and not isinstance(baseline, str):
        raise InvalidParameterError(f"baseline must be a method name CLASSIFIER/SCALER (e.g. "
                                    f"'mnist16-classifier-ce/constant'), got {baseline!r}")
    targets = _numbers(targets, "targets (--target-accuracy)")
    accuracy_levels = _numbers(accuracy_levels, "accuracy_levels (--accuracy-levels)")
    if accuracy_levels is not None and not all(isinstance(a, (int, float)) and 0 < a <= 1 for a in accuracy_levels):
        raise InvalidParameterError(f"accuracy_levels are accuracies in (0, 1], got {list(accuracy_levels)}")
    targets = _targets(targets)
    if targets is not None and accuracy_levels is not None:
        raise InvalidParameterError("--accuracy-levels interpolates a γ grid; with --target-accuracy the levels are "
                                    "the targets: give one of the two")
    if isinstance(sampler_params, Mapping):
        sampler_kwargs = dict(sampler_params)
    else:
        sampler_kwargs = _literal_params(list(sampler_params), "sampler-param")
    if isinstance(guidance_params, Mapping):
        guidance_kwargs = dict(guidance_params)
    else:
        guidance_kwargs = _literal_params(list(guidance_params), "guidance-param")
    classifiers = list(classifiers or [])
    with_classifier = takes_classifier(guidance)
    if with_classifier and not classifiers:
        raise InvalidParameterError(f"--guidance {guidance} needs a classifier: give --classifier (one or more)")
    if not with_classifier and (classifiers or classifier_paths):
        raise InvalidParameterError(f"--guidance {guidance} uses no classifier: drop --classifier/--classifier-path")
    for reserved in ("scaler", "classifier"):
        if reserved in guidance_kwargs:
            raise InvalidParameterError(f"--guidance-param {reserved}=... is not allowed: the {reserved} comes from "
                                        f"--{reserved}")
    for label, value in (("num_samples", num_samples), ("batch_size", batch_size), ("k", k), ("pr_limit", pr_limit),
                         ("pilot_samples", pilot_samples), ("bootstrap", bootstrap)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameterError(f"{label} must be a positive integer, got {value!r}")
    if isinstance(bisect_steps, bool) or not isinstance(bisect_steps, int) or bisect_steps < 0:
        raise InvalidParameterError(f"bisect_steps must be an integer >= 0, got {bisect_steps!r}")
    if not 0 <= tolerance < 1:
        raise InvalidParameterError(f"tolerance must be an accuracy difference in [0, 1), got {tolerance}")
    if num_samples < 2:
        raise InvalidParameterError("num_samples must be at least 2 (FD needs a covariance)")
    if num_samples < k + 1:  # as guidekit evaluate: a named error, not precision/recall written as null
        raise InvalidParameterError(f"precision/recall with k={k} (--k) needs at least {k + 1} samples per cell (each "
                                    f"is its own 0-th neighbour), but num_samples (--num-samples) is {num_samples}; "
                                    "lower --k or raise --num-samples")
    if targets is None and baseline is not None:
        raise InvalidParameterError(f"--baseline {baseline!r} names the method of the paired statistics (paired.json), "
                                    "which need --target-accuracy; give --target-accuracy, or drop --baseline")
    if targets is not None and pilot_samples > num_samples:
        raise InvalidParameterError(f"--pilot-samples ({pilot_samples}) must not exceed --num-samples ({num_samples}): "
                                    "the pilot subset is the first samples of each cell")
    if not 0 < threshold < 1:
        raise InvalidParameterError(f"threshold must be in (0, 1), got {threshold}")
    classifier_paths = list(classifier_paths)
    if len(classifier_paths) > len(classifiers):
        raise InvalidParameterError(f"{len(classifier_paths)} --classifier-path for {len(classifiers)} --classifier; "
                                    "give them in the order of --classifier")
    classifier_paths += [None] * (len(classifiers) - len(classifier_paths))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"--out {str(out)!r} is a file; give a folder (it is created if missing)")
    clf_labels: list[str | None] = _classifier_labels(classifiers, classifier_paths) if with_classifier else [None]
    sweeps = build_sweeps(scalers, scaler_params)
    ladder: dict[str, list[float]] = {}
    if targets is not None:
        sweeps, ladder = ladders(sweeps)
    cells = build_cells(clf_labels, sweeps, _seeds(seeds), guidance)
    for cell in {(c.scaler, canonical(c.params)): c for c in cells}.values():  # every point, before any sampling
        for gamma in ladder[cell.scaler] if targets is not None else [None]:  # every γ the search may try
            create("scaler", cell.scaler, **cell.params, **({"gamma": gamma} if gamma is not None else {}))
    dev = device if isinstance(device, torch.device) else resolve_device(str(device))

    net = models.load_network(model, model_path, dev, "model")
    clfs, clf_ids = {}, {}
    for label, name, path in zip(clf_labels, classifiers, classifier_paths):
        clfs[label] = models.load_network(name, path, dev, "classifier")
        clf_ids[label] = _net_id(name, path, clfs[label])
    try:  # fail on bad --guidance-param before any sampling
        probe = create("guidance", guidance, scaler=create("scaler", "constant"), **guidance_kwargs,
                       **({"classifier": next(iter(clfs.values()))} if clfs else {}))
    except (InvalidParameterError, TypeError, ValueError) as exc:
        raise InvalidParameterError(f"--guidance {guidance} with --guidance-param {guidance_kwargs}: {exc}") from None
    # cells at the neutral scale share a computation only where the output depends on the scale values alone
    neutral = float(getattr(probe, "neutral", 0.0)) if isinstance(probe, ScaledGuidance) else None
    explain = respacing is None
    respacing = respacing if respacing is not None else models.default_respacing(net)
    diffusion = models.diffusion_for(net, respacing)
    if explain:
        print(f"guidekit compare: {models.explain_respacing(net, respacing, diffusion.config.steps)}", file=sys.stderr)
    sampler_name = sampler or ("ddim" if respacing.startswith("ddim") else "ddpm")
    sampler_obj = create("sampler", sampler_name, **sampler_kwargs)

    card = models.card_of(net)
    if reference_batch is None and card.get("reference_batch"):  # a bundled model's held-out images, shipped with it
        source = reference.card_source(card, model)
    else:
        source = reference.open_source(reference_batch, None if reference_batch is not None else card.get("data"))
    ref_shape = source.shape
    shape = models.image_shape(net, ref_shape)
    if ref_shape is not None and tuple(ref_shape[1:]) != (shape[1], shape[2], shape[0]):
        raise InvalidParameterError(
            f"the model makes {shape[1]}×{shape[2]} images with {shape[0]} channel(s) but the reference "
            f"{str(source.path or source.dataset)!r} holds {ref_shape[1]}×{ref_shape[2]}×{ref_shape[3]} (H×W×C): the "
            "judge would compare unlike images. Give a reference of the model's image size and channels"
        )
    reference.check_neighbours(source, k, pr_limit)
    model_k = getattr(net, "num_classes", None)
    if clfs:
        ks = {label: models.num_classes_of(c, shape, dev, label) for label, c in clfs.items()}
        if len(set(ks.values())) != 1:
            raise InvalidParameterError(f"the classifiers disagree on the number of classes: {ks}")
        num_classes = next(iter(ks.values()))
    else:
        num_classes = models.real_labels(probe, net, guidance)
    if model_k is not None and model_k < num_classes:  # more is fine: e.g. a null label for CFG
        raise InvalidParameterError(f"the model is conditional on {model_k} classes but the classifiers have {num_classes}")
    judge_obj = models.load_judge(judge, judge_weights, dev)
    judge_id = {"name": judge, **({"weights": _file_id(judge_weights)["sha256"]} if judge_weights
                                  else {k: v for k, v in identity(judge, judge_obj).items() if k == "sha256"})}
    spaces = feature_spaces(judge, judge_obj, judge_id, features, dev)
    probe_feats = judge_obj.extract(torch.zeros(2, *shape, device=dev))
    judge_k = int(probe_feats["logits"].shape[1])
    if judge_k != num_classes and targets is not None:
        raise InvalidParameterError(f"the judge {judge!r} has {judge_k} classes and the classifiers {num_classes}: "
                                    "no accuracy, so no γ for a target accuracy; use a judge of these classes")
    reference.check_precomputed(source, judge, int(probe_feats["pool"].shape[1]), [sp for sp in spaces if sp != reference.JUDGE_SPACE])
    methods = list(dict.fromkeys(method_name({**c.spec(), "params": {**c.params, "gamma": 0.0},
                                              "guidance_params": guidance_kwargs}) for c in cells))
    if baseline is None:
        baseline = method_name({"classifier": clf_labels[0], "scaler": "constant", "guidance": guidance,
                                "guidance_params": guidance_kwargs, "params": {}})
        if baseline not in methods:  # no constant scaler in this run: the first method
            baseline = methods[0]
    if targets is not None and baseline not in methods:
        raise InvalidParameterError(f"--baseline {baseline!r} is not a method of this run; its methods are "
                                    f"{', '.join(methods)} (CLASSIFIER/SCALER; the default is the first classifier "
                                    "with constant)")
    roles = [(f"model {model}", card), *((f"classifier {label}", models.card_of(c)) for label, c in clfs.items()),
             *((f"judge {judge}" if label == "oracle" else f"feature space {label} ({sp.name})", sp.card)
               for label, sp in spaces.items())]
    overlap, unchecked = _check_overlap(source, roles, allow_reference_overlap)

    manifest = {
        "format": 2, "model": _net_id(model, model_path, net),
        "diffusion": {"steps": diffusion.config.steps, "schedule": diffusion.config.schedule,
                      "learn_sigma": diffusion.config.learn_sigma, "respacing": respacing},
        "sampler": {"name": sampler_name, "params": sampler_kwargs}, "num_samples": num_samples,
        "labels": "i mod K", "num_classes": num_classes, "image_shape": list(shape), "judge": judge_id,
        "features": {label: sp.ident for label, sp in spaces.items()}, "k": k, "pr_limit": pr_limit,
        "threshold": threshold, "clip_denoised": clip_denoised,
    }
    if guidance != "classifier" or guidance_kwargs:  # absent for classifier guidance
        manifest["guidance"] = {"name": guidance, "params": guidance_kwargs}
    check_manifest(out, manifest)
    ref_stats = reference.load_stats(out, source, {label: (sp.ident, sp.extractor) for label, sp in spaces.items()},
                                     batch_size=min(batch_size, 256), k=k, pr_limit=pr_limit, device=dev)
    ctx = Context(out=out, manifest=manifest, model=net, diffusion=diffusion, sampler=sampler_obj, classifiers=clfs,
                  classifier_ids=clf_ids, judge=judge_obj,
                  spaces={label: sp.extractor for label, sp in spaces.items()}, shape=shape, num_classes=num_classes,
                  num_samples=num_samples, batch_size=batch_size, device=dev, k=k, threshold=threshold,
                  save_samples=save_samples, clip_denoised=clip_denoised, guidance_params=guidance_kwargs,
                  neutral=neutral, reference=ref_stats, reference_id=_reference_id(source, spaces, k, pr_limit),
                  reference_sha256=source.sha256, feature_names={label: sp.name for label, sp in spaces.items()})
    if judge_k != num_classes:
        print(f"guidekit compare: warning: the judge {judge!r} has {judge_k} classes and the classifiers {num_classes}; "
              "accuracy is not computed (use a judge trained on the classifiers' labels)", file=sys.stderr)
    ref_info = {**source.describe(), "id": ctx.reference_id, "features": ctx.feature_names,
                **({"overlap": overlap} if overlap else {}), **({"unchecked": unchecked} if unchecked else {})}

    found = []
    if targets is not None:
        found = search_all(ctx, cells, targets, ladder, pilot=pilot_samples, steps=bisect_steps, tolerance=tolerance,
                           dedupe=dedupe, show_progress=show_progress)
        cells = list(dict.fromkeys(f.cell for f in found if f.cell is not None))

    def to_records(rows: list[Row]) -> list[dict[str, Any]]:
        if targets is None:
            return [record_of(*row, guidance_kwargs) for row in rows]
        by_cell = {row[0]: row for row in rows}
        recs = []
        for f in found:
            search = {"pilot_samples": pilot_samples, **f.search.as_dict()}
            if f.cell is None:
                rec = record_of(attrs.evolve(f.template, params={**f.template.params, "gamma": None}),
                                {"features": ctx.feature_names, "reference_sha256": source.sha256}, None,
                                guidance_kwargs)
            elif f.cell in by_cell:
                rec = record_of(*by_cell[f.cell], guidance_kwargs)
            else:
                continue
            recs.append({**rec, "target_accuracy": f.target, "search": search})
        return recs

    def save(rows: list[Row]) -> None:  # the records so far, marked incomplete until write_outputs
        with atomic_write(out / "results.json", "w") as fh:
            json.dump({"records": to_records(rows), "reference": ref_info, "complete": False}, fh, indent=1)

    mark_incomplete(out)

    rows = run_cells(ctx, cells, dedupe=dedupe, show_progress=show_progress, on_record=save)
    records = to_records(rows)
    profiles: dict[tuple[str, str], list[tuple[float, dict]]] = {}
    first_seed = cells[0].seed if cells else None
    for cell, result, _ in rows:
        if cell.seed == first_seed:
            rec = record_of(cell, result, None, guidance_kwargs)
            profiles.setdefault(method_of(rec), []).append((sweep_value(cell.params), result.get("profile", {})))
    paired = {"baseline": baseline, "rows": paired_rows(records, baseline, method_name, _bootstrap(ctx, bootstrap))
              if targets is not None else []}
    note = "" if targets is not None else "Paired statistics (paired.json) need --target-accuracy."
    levels, table = write_outputs(out, records, profiles, accuracy_levels, plots, targets=targets, paired=paired,
                                  reference=ref_info, note=note)
    return CompareResult(records, levels, table, out, paired)
