"""Matched-accuracy comparison: each method's FD interpolated along its γ curve at fixed accuracies.

Comparing methods at one γ each confounds them (a scaler with s ≥ γ, as EDS, simply guides harder).
Instead, for every (method, seed) the points (accuracy, FD) are taken in γ order and FD is linearly
interpolated at an accuracy level a between the first two consecutive points whose accuracies bracket
a; a level the curve never reaches gives no value (nothing is extrapolated). Over seeds: mean ± std.
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


def matched_table(records: Sequence[dict[str, Any]], levels: Sequence[float]) -> list[MatchedRow]:
    """One row per method: FD at each accuracy level (over seeds) and its best mean FD over γ."""
    rows = []
    for (clf, scaler), runs in _curves(records).items():
        at_level = {}
        for level in levels:
            vals = []
            for rs in runs.values():
                ok = [r for r in rs if r.get("accuracy") is not None and r.get("fd") is not None]
                vals.append(interpolate_at([sweep_value(r["params"]) for r in ok], [r["accuracy"] for r in ok],
                                           [r["fd"] for r in ok], level) if ok else None)
            at_level[float(level)] = summarise(vals)
        by_param: dict[str, list[dict[str, Any]]] = {}
        for rs in runs.values():
            for r in rs:
                by_param.setdefault(repr(sorted(r["params"].items())), []).append(r)
        best = None
        for rs in by_param.values():
            s = summarise(r.get("fd") for r in rs)
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


def to_markdown(rows: Sequence[MatchedRow], levels: Sequence[float]) -> str:
    """The matched-accuracy table as markdown (FD mean ± std over seeds; n when some seeds miss a level)."""
    head = ["classifier / guidance", "scaler"] + [f"FD @ acc {lv:.3f}" for lv in levels] + ["best FD", "at", "its acc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.classifier, r.scaler] + [r.at_level[float(lv)].text(of=r.seeds) for lv in levels]
        cells += [r.best_fd.text(), _params_text(r.best_params), f"{r.best_accuracy:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
