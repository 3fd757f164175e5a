"""Plots of a comparison: the accuracy–FD frontier and where guidance vanishes (needs guidekit[plot])."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write
from .matched import _curves, metric_value, sweep_value


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("plots need matplotlib: pip install 'guidekit[plot]'") from exc
    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=110)
    _pyplot().close(fig)
    return path


def _by_point(runs: dict[int, list[dict[str, Any]]]) -> list[tuple[float, list[dict[str, Any]]]]:
    """[(swept value, records over seeds)] sorted by the swept value (the target accuracy of
    ``--target-accuracy`` records, whose γ differs from seed to seed)."""
    points: dict[float, list[dict[str, Any]]] = {}
    for rs in runs.values():
        for r in rs:
            key = r["target_accuracy"] if r.get("target_accuracy") is not None else sweep_value(r["params"])
            points.setdefault(float(key), []).append(r)
    return sorted(points.items())


def _mean_std(values: list[Any]) -> tuple[float, float]:
    v = [x for x in values if x is not None]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def features_of(records: list[dict[str, Any]]) -> list[str]:
    """The feature spaces of the records' FD, the judge's (``oracle``) first."""
    seen = ["oracle"]
    for r in records:
        if isinstance(r.get("fd"), dict):
            seen += [f for f in r["fd"] if f not in seen]
    return seen


def plot_frontier(records: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Accuracy (x) vs FD (y), one panel per feature space, one curve per method in γ (or target) order,
    mean ± std over seeds."""
    plt = _pyplot()
    spaces = features_of(records)
    fig, axes = plt.subplots(1, len(spaces), figsize=(6.4 * len(spaces), 4.6), squeeze=False)
    targets = any(r.get("target_accuracy") is not None for r in records)
    for ax, feature in zip(axes[0], spaces):
        for (clf, scaler), runs in _curves(records).items():
            pts = _by_point(runs)
            acc = [_mean_std([r["accuracy"] for r in rs]) for _, rs in pts]
            fd = [_mean_std([metric_value(r, "fd", feature) for r in rs]) for _, rs in pts]
            ax.errorbar([a[0] for a in acc], [f[0] for f in fd], xerr=[a[1] for a in acc], yerr=[f[1] for f in fd],
                        marker="o", ms=4, capsize=2, label=f"{clf} / {scaler}")
            for (g, _), a, f in zip(pts, acc, fd):
                ax.annotate(f"{g:g}", (a[0], f[0]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("judge accuracy against the requested label")
        ax.set_ylabel(f"FD to the reference ({feature} features)")
        values = [v for v in (metric_value(r, "fd", feature) for r in records) if v is not None]
        if values and min(values) > 0 and max(values) / min(values) > 20:  # runaway points would flatten every curve
            ax.set_yscale("log")
            ax.set_ylabel(f"FD to the reference ({feature} features, log scale)")
        ax.set_title(f"accuracy–FD frontier, {feature} features (labels: {'target' if targets else 'γ'}; "
                     "bars: std over seeds)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_vanishing(records: list[dict[str, Any]], profiles: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]],
                   path: str | os.PathLike) -> Path:
    """Per method: the vanishing point t against γ (median, 10–90% band) and the mean ‖s·∇‖ profile per γ."""
    plt = _pyplot()
    curves = {m: runs for m, runs in _curves(records).items()  # a guidance without a gradient has no vanishing point
              if any(r.get("vanishing") for rs in runs.values() for r in rs)}
    fig, axes = plt.subplots(2, max(len(curves), 1), figsize=(3.6 * max(len(curves), 1), 6.2), squeeze=False)
    for col, ((clf, scaler), runs) in enumerate(curves.items()):
        top, bottom = axes[0][col], axes[1][col]
        pts = _by_point(runs)
        med = [_mean_std([(r.get("vanishing") or {}).get("median_t") for r in rs])[0] for _, rs in pts]
        lo = [_mean_std([(r.get("vanishing") or {}).get("q10_t") for r in rs])[0] for _, rs in pts]
        hi = [_mean_std([(r.get("vanishing") or {}).get("q90_t") for r in rs])[0] for _, rs in pts]
        gs = [g for g, _ in pts]
        top.plot(gs, med, marker="o", ms=4)
        top.fill_between(gs, lo, hi, alpha=0.25)
        frac = [_mean_std([(r.get("vanishing") or {}).get("fraction") for r in rs])[0] for _, rs in pts]
        share = top.twinx()
        share.plot(gs, frac, ls="--", color="gray", marker=".", ms=3)
        share.set_ylim(-0.02, 1.02)
        share.set_ylabel("fraction of samples where it vanishes (dashed)", fontsize=7)
        top.set_title(f"{clf} / {scaler}", fontsize=9)
        top.set_xlabel("γ")
        top.set_ylabel("vanishing point t (median, 10–90%)")
        for g, prof in profiles.get((clf, scaler), []):
            if prof.get("t"):
                bottom.plot(prof["t"], prof["mean_guided_norm"], label=f"γ={g:g}")
        bottom.set_xlabel("t")
        bottom.set_ylabel("mean ‖s·∇ log p(y|x_t)‖")
        bottom.invert_xaxis()
        if bottom.lines:
            bottom.legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, Path(path))
