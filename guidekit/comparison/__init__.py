"""``gk.compare``: guidance strategies side by side on the accuracy–FD frontier, with paired seeds.

A scaler that raises the effective scale (EDS: s ≥ γ) wins any single-γ comparison on accuracy and
loses on diversity; so every method is swept over γ and compared at *matched accuracy* (FD interpolated
along its γ curve), with the same initial and per-step noise and the same labels for the same sample
index in every cell. Any guidance kind can be swept (``guidance="classifier-free"`` with a
class-conditional model, its scale w swept as γ); several runs go on one frontier with
:func:`guidekit.comparison.merge.merge_runs`. See :mod:`guidekit.comparison.runner` for the cache layout.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from ..errors import InvalidParameterError
from ..io import atomic_write
from . import models, reference
from .grid import Cell, build_cells, build_sweeps, canonical
from .matched import default_levels, matched_table, method_of, sweep_value, to_markdown
from .runner import Context, Row, check_manifest, record_of, run_cells

__all__ = ["CompareResult", "compare", "Cell"]


@attrs.frozen(eq=False)
class CompareResult:
    """What :func:`compare` returns: one record per cell (as in ``results.json``), the accuracy levels of the
    matched table, that table as Markdown (also in ``matched_accuracy.md``) and the output folder."""

    records: list[dict[str, Any]]
    levels: list[float]
    table: str
    out: Path


def _file_id(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(f"{str(p)!r} does not exist")
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return {"path": str(p.resolve()), "sha256": digest.hexdigest()}


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


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise InvalidParameterError(f"--seeds must be >= 1 (the number of seeds) or a list such as 0,1,2; got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise InvalidParameterError(f"--seeds must list distinct seeds, got {list(seeds)}")
    return out


def _classifier_labels(names: Sequence[str], paths: Sequence[str | Path | None]) -> list[str]:
    """Names as given; a name used twice (two checkpoints of one architecture) gets @<file stem>."""
    labels = [n if names.count(n) == 1 or p is None else f"{n}@{Path(p).stem}" for n, p in zip(names, paths)]
    if len(set(labels)) != len(labels):
        raise InvalidParameterError(f"--classifier names {list(names)} repeat with the same checkpoint; give each once")
    return labels


def write_outputs(out: Path, records: list[dict[str, Any]], profiles: dict[tuple[str, str], list[tuple[float, dict]]],
                  levels: Sequence[float] | None, plots: bool) -> tuple[list[float], str]:
    """results.json, results.csv, matched_accuracy.md, and the plots (vanishing.png when some method has
    a guidance gradient whose vanishing point is measured)."""
    with atomic_write(out / "results.json", "w") as fh:
        json.dump({"records": records}, fh, indent=1)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["classifier", "scaler", "params", "seed", "accuracy", "fd", "precision", "recall", "seconds",
                     "vanishing_median_t", "vanishing_fraction", "shared", "guidance", "guidance_params", "run"])
    for r in records:
        v = r.get("vanishing") or {}
        writer.writerow([r["classifier"], r["scaler"], json.dumps(r["params"], sort_keys=True), r["seed"], r["accuracy"],
                         r["fd"], r["precision"], r["recall"], r["seconds"], v.get("median_t"), v.get("fraction"),
                         r.get("shared", ""), r.get("guidance", "classifier"),
                         json.dumps(r.get("guidance_params") or {}, sort_keys=True), r.get("run", "")])
    with atomic_write(out / "results.csv", "w") as fh:
        fh.write(buf.getvalue())
    levels = list(levels) if levels is not None else default_levels(records)
    table = to_markdown(matched_table(records, levels), levels)
    with atomic_write(out / "matched_accuracy.md", "w") as fh:
        fh.write("FD at matched judge accuracy (linear interpolation along each method's γ curve; mean ± std "
                 "over seeds; n = seeds whose curve reaches the level), and each method's best mean FD.\n\n" + table)
    if plots:
        from .plots import plot_frontier, plot_vanishing

        plot_frontier(records, out / "frontier.png")
        if any(r.get("vanishing") for r in records):
            plot_vanishing(records, profiles, out / "vanishing.png")
    return levels, table


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
    """Sweep every (classifier, scaler, params, seed) cell and write the comparison into ``out``.

    ``scalers``: ``["constant:0,1,2", "entropy:0,0.5,1"]`` (or ``{"constant": [0, 1, 2]}``);
    ``scaler_params``: ``["interval.end=700"]``; ``classifier_paths`` in the order of ``classifiers``.
    ``guidance``: a registered guidance (default ``classifier``); one without a classifier
    (``classifier-free``, ``cfg-rescale``, ``apg``) takes ``classifiers=None`` and a class-conditional
    model, whose real labels (below the null label) are requested as y_i = i mod K.
    ``guidance_params``: ``["phi=0.7"]`` or ``{"phi": 0.7}``, the same for every cell.
    Cached cells in ``out`` are reused (the same call twice computes nothing the second time).
    """
    from ..devices import resolve_device
    from ..guidance import ScaledGuidance, takes_classifier
    from ..registry import create

    if isinstance(scalers, Mapping):
        scalers = [f"{n}:{','.join(str(g) for g in gs)}" for n, gs in scalers.items()]
    scalers = [scalers] if isinstance(scalers, str) else scalers  # one sweep given as "constant:0,1,2"
    classifiers = [classifiers] if isinstance(classifiers, str) else classifiers
    classifier_paths = [classifier_paths] if isinstance(classifier_paths, (str, Path)) else classifier_paths
    if accuracy_levels is not None and not all(isinstance(a, (int, float)) and 0 < a <= 1 for a in accuracy_levels):
        raise InvalidParameterError(f"accuracy_levels are accuracies in (0, 1], got {list(accuracy_levels)}")
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
    for label, value in (("num_samples", num_samples), ("batch_size", batch_size), ("k", k), ("pr_limit", pr_limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameterError(f"{label} must be a positive integer, got {value!r}")
    if num_samples < 2:
        raise InvalidParameterError("num_samples must be at least 2 (FD needs a covariance)")
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
    cells = build_cells(clf_labels, build_sweeps(scalers, scaler_params), _seeds(seeds), guidance)
    for cell in {(c.scaler, canonical(c.params)): c for c in cells}.values():  # every point, before any sampling
        create("scaler", cell.scaler, **cell.params)
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
    if reference_batch is None and card.get("reference_batch"):
        reference_batch = card["reference_batch"]  # a bundled model's real images, shipped with it
    dataset = None if reference_batch is not None else card.get("data")
    source = reference.describe_source(reference_batch, dataset)
    ref_shape = reference.reference_shape(reference_batch, dataset)
    shape = models.image_shape(net, ref_shape)
    if ref_shape is not None and tuple(ref_shape[1:]) != (shape[1], shape[2], shape[0]):
        raise InvalidParameterError(
            f"the model makes {shape[1]}×{shape[2]} images with {shape[0]} channel(s) but the reference "
            f"{str(reference_batch or dataset)!r} holds {ref_shape[1]}×{ref_shape[2]}×{ref_shape[3]} (H×W×C): the "
            "judge would compare unlike images. Give a reference of the model's image size and channels"
        )
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
    judge_id = {"name": judge, **({"weights": _file_id(judge_weights)["sha256"]} if judge_weights else {})}

    manifest = {
        "format": 1, "model": _net_id(model, model_path, net),
        "diffusion": {"steps": diffusion.config.steps, "schedule": diffusion.config.schedule,
                      "learn_sigma": diffusion.config.learn_sigma, "respacing": respacing},
        "sampler": {"name": sampler_name, "params": sampler_kwargs}, "num_samples": num_samples,
        "labels": "i mod K", "num_classes": num_classes, "image_shape": list(shape), "judge": judge_id,
        "reference": source, "k": k, "pr_limit": pr_limit, "threshold": threshold, "clip_denoised": clip_denoised,
    }
    if guidance != "classifier" or guidance_kwargs:  # absent for classifier guidance: older runs stay valid
        manifest["guidance"] = {"name": guidance, "params": guidance_kwargs}
    check_manifest(out, manifest)
    ref = reference.load_or_compute(out, source, judge_id, judge_obj, reference_batch, dataset,
                                    batch_size=min(batch_size, 256), k=k, pr_limit=pr_limit, device=dev)
    ctx = Context(out=out, manifest=manifest, model=net, diffusion=diffusion, sampler=sampler_obj, classifiers=clfs,
                  classifier_ids=clf_ids, judge=judge_obj, reference=ref, shape=shape, num_classes=num_classes,
                  num_samples=num_samples, batch_size=batch_size, device=dev, k=k, threshold=threshold,
                  save_samples=save_samples, clip_denoised=clip_denoised, guidance_params=guidance_kwargs,
                  neutral=neutral)
    judge_k = int(judge_obj.extract(torch.zeros(2, *shape, device=dev))["logits"].shape[1])
    if judge_k != num_classes:
        print(f"guidekit compare: warning: the judge {judge!r} has {judge_k} classes and the classifiers {num_classes}; "
              "accuracy is not computed (use a judge trained on the classifiers' labels)", file=sys.stderr)

    def save(rows: list[Row]) -> None:
        with atomic_write(out / "results.json", "w") as fh:
            json.dump({"records": [record_of(*row, guidance_kwargs) for row in rows]}, fh, indent=1)

    rows = run_cells(ctx, cells, dedupe=dedupe, show_progress=show_progress, on_record=save)
    records = [record_of(*row, guidance_kwargs) for row in rows]
    profiles: dict[tuple[str, str], list[tuple[float, dict]]] = {}
    first_seed = cells[0].seed
    for (cell, result, _), rec in zip(rows, records):
        if cell.seed == first_seed:
            profiles.setdefault(method_of(rec), []).append((sweep_value(cell.params), result.get("profile", {})))
    levels, table = write_outputs(out, records, profiles, accuracy_levels, plots)
    return CompareResult(records, levels, table, out)
