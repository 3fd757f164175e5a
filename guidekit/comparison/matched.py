"""Matched-accuracy comparison: each method's FD (or KID) at fixed judge accuracies.

Comparing methods at one γ each confounds them (a scaler with s ≥ γ, as EDS, simply guides harder).
Two ways to compare at the same accuracy:

* ``--target-accuracy`` (:func:`target_table`): per (method, seed) the γ reaching each target was
  found by bisection (:mod:`.bisect`) and the metric measured there; over seeds: mean ± std, with the
  accuracy actually reached on all the samples.
* a γ grid (:func:`matched_table`): for every (method, seed) the points (accuracy, metric) are taken
  in γ order and the metric is linearly interpolated at an accuracy level a between the first two
  consecutive points whose accuracies bracket a; a level the curve never reaches gives no value
  (nothing is extrapolated). Sparse grids make this interpolation coarse: prefer targets.

Metrics are per feature space (``record["fd"]["oracle"]``); records of older runs with one scalar
``fd`` are read as the judge's (``oracle``) space.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import numpy as np


def interpolate_at(gammas: Sequence[float], acc: Sequence[float], fd: Sequence[float], level: float) -> float | None:
    """FD at accuracy ``level`` along the curve ordered by γ (None if the curve never reaches it)."""
    order = np.argsort(np.asarray(gammas, dtype=float), kind="stable")
    a = np.asarray(acc, dtype=float)[order]
    f = np.asarray(fd, dtype=float)[order]
    for i in range(len(a)):
        if a[i] == level:
            return float(f[i])
        if i + 1 < len(a) and min(a[i], a[i + 1]) < level < max(a[i], a[i + 1]):
            w = (level - a[i]) / (a[i + 1] - a[i])
            return float(f[i] + w * (f[i + 1] - f[i]))
    return None


@attrs.frozen
class Summary:
    mean: float
    std: float
    n: int

    def text(self, of: int | None = None) -> str:
        """``mean ± std`` with 2 decimals (4 below 1), and ``(n=...)`` when fewer than ``of`` seeds count."""
        if self.n == 0:
            return "—"
        digits = 4 if abs(self.mean) < 1 else 2
        s = f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"
        return s + (f" (n={self.n})" if of is not None and self.n < of else "")


def summarise(values: Iterable[float | None]) -> Summary:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return Summary(float("nan"), float("nan"), 0)
    return Summary(float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))


def metric_value(record: dict[str, Any], metric: str = "fd", feature: str = "oracle") -> float | None:
    """``record[metric][feature]`` (a scalar ``record[metric]`` counts as the ``oracle`` space)."""
    value = record.get(metric)
    if isinstance(value, dict):
        value = value.get(feature)
    elif feature != "oracle":
        value = None
    return None if value is None else float(value)


def method_name(record: dict[str, Any]) -> str:
    """``CLASSIFIER/SCALER`` (see :func:`method_of`): how ``--baseline`` and paired.json name a method."""
    who, scaler = method_of(record)
    return f"{who}/{scaler}"


def _params_label(name: str, params: dict[str, Any]) -> str:
    return f"{name}({_params_text(params)})" if params else name


def method_of(record: dict[str, Any]) -> tuple[str, str]:
    """(what guides, which scaler): one curve of the frontier.

    What guides: the classifier under classifier guidance, else the guidance name (``x0-classifier:NAME``
    with a classifier), with its ``guidance_params``, after the record's ``run`` when runs are merged.
    Which scaler: its name, plus its parameters other than the swept γ (``timestep(schedule=cosine)``),
    so a swept schedule or interval gives one curve per value.
    """
    guidance, clf = record.get("guidance", "classifier"), record.get("classifier")
    who = clf if guidance == "classifier" else (f"{guidance}:{clf}" if clf else guidance)
    who = _params_label(str(who), record.get("guidance_params") or {})
    if record.get("run"):
        who = f"{record['run']}: {who}"
    params = record.get("params") or {}
    rest = {k: v for k, v in params.items() if k != "gamma"} if "gamma" in params else {}
    return who, _params_label(record["scaler"], rest)


def _curves(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[int, list[dict[str, Any]]]]:
    """{method: {seed: [records]}} in first-seen order (see :func:`method_of`)."""
    out: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for r in records:
        out.setdefault(method_of(r), {}).setdefault(r["seed"], []).append(r)
    return out


def sweep_value(params: dict[str, Any]) -> float:
    """The swept value a curve is ordered by: γ (or the only numeric parameter)."""
    if "gamma" in params:
        return float(params["gamma"])
    nums = [v for v in params.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(nums[0]) if len(nums) == 1 else 0.0


def default_levels(records: Sequence[dict[str, Any]], count: int = 3) -> list[float]:
    """Accuracy levels inside the range every method reaches (mean over seeds per γ)."""
    ranges = []
    for runs in _curves(records).values():
        by_param: dict[str, list[float]] = {}
        for rs in runs.values():
            for r in rs:
                if r.get("accuracy") is not None:
                    by_param.setdefault(repr(sorted(r["params"].items())), []).append(r["accuracy"])
        means = [float(np.mean(v)) for v in by_param.values()]
        if len(means) >= 2:
            ranges.append((min(means), max(means)))
    if not ranges:
        return []
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if hi <= lo:
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    fractions = np.linspace(0.1, 0.9, count) if count > 1 else np.array([0.5])
    return sorted({round(float(lo + (hi - lo) * q), 3) for q in fractions})


@attrs.frozen
class MatchedRow:
    classifier: str
    scaler: str
    at_level: dict[float, Summary]
    best_fd: Summary
    best_params: dict[str, Any]
    best_accuracy: float
    seeds: int


def matched_table(records: Sequence[dict[str, Any]], levels: Sequence[float], metric: str = "fd",
                  feature: str = "oracle") -> list[MatchedRow]:
    """One row per method: the metric at each accuracy level (over seeds) and its best mean over γ."""
    rows = []
    for (clf, scaler), runs in _curves(records).items():
        at_level = {}
        for level in levels:
            vals = []
            for rs in runs.values():
                ok = [r for r in rs if r.get("accuracy") is not None and metric_value(r, metric, feature) is not None]
                vals.append(interpolate_at([sweep_value(r["params"]) for r in ok], [r["accuracy"] for r in ok],
                                           [metric_value(r, metric, feature) for r in ok], level) if ok else None)
            at_level[float(level)] = summarise(vals)
        by_param: dict[str, list[dict[str, Any]]] = {}
        for rs in runs.values():
            for r in rs:
                by_param.setdefault(repr(sorted(r["params"].items())), []).append(r)
        best = None
        for rs in by_param.values():
            s = summarise(metric_value(r, metric, feature) for r in rs)
            if s.n and (best is None or s.mean < best[0].mean):
                acc = [r["accuracy"] for r in rs if r.get("accuracy") is not None]
                best = (s, rs[0]["params"], float(np.mean(acc)) if acc else float("nan"))
        if best is None:
            best = (Summary(float("nan"), float("nan"), 0), {}, float("nan"))
        rows.append(MatchedRow(clf, scaler, at_level, best[0], dict(best[1]), best[2], len(runs)))
    return rows


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{'γ' if k == 'gamma' else k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def to_markdown(rows: Sequence[MatchedRow], levels: Sequence[float], what: str = "FD") -> str:
    """The matched-accuracy table as markdown (mean ± std over seeds; n when some seeds miss a level)."""
    head = (["classifier / guidance", "scaler"] + [f"{what} @ acc {lv:.3f}" for lv in levels]
            + [f"best {what}", "at", "its acc"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.classifier, r.scaler] + [r.at_level[float(lv)].text(of=r.seeds) for lv in levels]
        cells += [r.best_fd.text(), _params_text(r.best_params), f"{r.best_accuracy:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@attrs.frozen
class TargetRow:
    """One method at each target: the metric over seeds, the accuracy reached and the γ found."""

    method: str
    at_target: dict[float, Summary]
    accuracy: dict[float, Summary]
    gamma: dict[float, Summary]
    missed: dict[float, int]  # seeds whose search never reached the target
    seeds: int


def target_table(records: Sequence[dict[str, Any]], targets: Sequence[float], metric: str = "fd",
                 feature: str = "oracle") -> list[TargetRow]:
    """One row per method of ``--target-accuracy`` records (see the module docstring)."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("target_accuracy") is not None:
            by_method.setdefault(method_name(r), []).append(r)
    rows = []
    for name, rs in by_method.items():
        at, acc, gam, missed = {}, {}, {}, {}
        for t in targets:
            here = [r for r in rs if float(r["target_accuracy"]) == float(t)]
            at[float(t)] = summarise(metric_value(r, metric, feature) for r in here)
            acc[float(t)] = summarise(r.get("accuracy") for r in here)
            gam[float(t)] = summarise(sweep_value(r["params"]) if (r.get("search") or {}).get("reached", True)
                                      else None for r in here)
            missed[float(t)] = sum(1 for r in here if not (r.get("search") or {}).get("reached", True))
        rows.append(TargetRow(name, at, acc, gam, missed, len({r["seed"] for r in rs})))
    return rows


def target_markdown(rows: Sequence[TargetRow], targets: Sequence[float], what: str = "FD") -> str:
    """Markdown: per target the metric (mean ± std over seeds) and, below it, the accuracy reached and γ."""
    head = ["method"] + [f"{what} @ target {t:.2f}" for t in targets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.method]
        for t in targets:
            t = float(t)
            if r.at_target[t].n == 0:
                cells.append(f"not reached ({r.missed[t]} seed(s))" if r.missed[t] else "—")
                continue
            note = f"acc {r.accuracy[t].mean:.3f}, γ {r.gamma[t].mean:.3g}"
            if r.missed[t]:
                note += f", {r.missed[t]} seed(s) not reached"
            cells.append(f"{r.at_target[t].text(of=r.seeds)} ({note})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
