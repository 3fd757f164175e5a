"""What a comparison writes: results.json/.csv, matched_accuracy.md, paired.json and the plots."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_write
from .matched import (
    default_levels,
    matched_table,
    metric_value,
    target_markdown,
    target_table,
    to_markdown,
)
from .paired import resolved
from .plots import features_of

#: how each metric is shown in the tables (name, factor)
SHOWN = {"fd": ("FD", 1.0), "kid": ("KID", 1.0)}


def _scaled(records: Sequence[dict[str, Any]], metric: str, factor: float) -> list[dict[str, Any]]:
    if factor == 1.0:
        return list(records)
    out = []
    for r in records:
        value = r.get(metric)
        if isinstance(value, dict):
            r = {**r, metric: {k: None if v is None else v * factor for k, v in value.items()}}
        out.append(r)
    return out


def write_csv(out: Path, records: Sequence[dict[str, Any]]) -> None:
    spaces = features_of(list(records))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["classifier", "scaler", "params", "seed", "target_accuracy", "accuracy",
                     *[f"fd_{f}" for f in spaces], *[f"kid_{f}" for f in spaces], "precision", "recall", "seconds",
                     "vanishing_median_t", "vanishing_fraction", "shared", "guidance", "guidance_params", "run",
                     "reference_sha256"])
    for r in records:
        v = r.get("vanishing") or {}
        writer.writerow([r["classifier"], r["scaler"], json.dumps(r["params"], sort_keys=True), r["seed"],
                         r.get("target_accuracy", ""), r["accuracy"],
                         *[metric_value(r, "fd", f) for f in spaces], *[metric_value(r, "kid", f) for f in spaces],
                         r.get("precision"), r.get("recall"), r.get("seconds"), v.get("median_t"), v.get("fraction"),
                         r.get("shared", ""), r.get("guidance", "classifier"),
                         json.dumps(r.get("guidance_params") or {}, sort_keys=True), r.get("run", ""),
                         r.get("reference_sha256", "")])
    with atomic_write(out / "results.csv", "w") as fh:
        fh.write(buf.getvalue())


def paired_markdown(paired: dict[str, Any]) -> str:
    """The paired differences as markdown, each with its verdict ("resolved" only when the CI excludes 0)."""
    lines = [f"## Paired differences against {paired['baseline']} (FD of the method − FD of the baseline)\n",
             "Per seed the two share initial noise, per-step noise and labels. Mean ± std over seeds; 95% CI: "
             "paired bootstrap over samples (the same resampled sample indices for both, per seed); wins: seeds "
             "where the method's FD is lower. *resolved* only when the CI excludes 0.\n",
             "| method | target | features | FD difference | 95% CI | wins | verdict |", "|---|---|---|---|---|---|---|"]
    for row in paired["rows"]:
        lo, hi = row["ci95"]
        verdict = ("resolved: lower FD" if hi < 0 else "resolved: higher FD") if resolved(row) else "not resolved"
        lines.append(f"| {row['method']} | {row['target_accuracy']:.2f} | {row['feature']} | "
                     f"{row['diff_mean']:+.3f} ± {row['diff_std']:.3f} | [{lo:+.3f}, {hi:+.3f}] | "
                     f"{row['wins']}/{row['seeds']} | {verdict} |")
    if not paired["rows"]:
        lines.append("| (no pairs: paired statistics need --target-accuracy and the baseline in the run) | | | | | | |")
    return "\n".join(lines) + "\n"


def tables(records: Sequence[dict[str, Any]], levels: Sequence[float], targets: Sequence[float] | None) -> str:
    """Every matched-accuracy table: per metric and feature space, at the targets (or interpolated levels)."""
    parts = []
    names = {}
    for r in records:
        names.update(r.get("features") or {})
    for metric, (what, factor) in SHOWN.items():
        scaled = _scaled(records, metric, factor)
        for feature in features_of(list(records)):
            if not any(metric_value(r, metric, feature) is not None for r in records):
                continue
            title = f"## {what}, {feature} features" + (f" ({names[feature]})" if feature in names else "")
            if targets:
                body = target_markdown(target_table(scaled, targets, metric, feature), targets, what)
            else:
                body = to_markdown(matched_table(scaled, levels, metric, feature), levels, what)
            parts.append(f"{title}\n\n{body}")
    return "\n".join(parts)


def mark_incomplete(out: Path) -> None:
    """Mark an earlier results.json in ``out`` incomplete while a run rewrites the outputs beside it (so a run
    killed between two of its files never leaves a results.json that looks finished next to a stale one)."""
    path = out / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(results, dict) and results.get("complete") is not False:
        with atomic_write(path, "w") as fh:
            json.dump({**results, "complete": False}, fh, indent=1)


def write_outputs(out: Path, records: list[dict[str, Any]], profiles: dict[tuple[str, str], list[tuple[float, dict]]],
                  levels: Sequence[float] | None, plots: bool, *, targets: Sequence[float] | None = None,
                  paired: dict[str, Any] | None = None, reference: dict[str, Any] | None = None,
                  note: str = "") -> tuple[list[float], str]:
    """results.json, results.csv, matched_accuracy.md, paired.json (when given) and the plots
    (vanishing.png when some method has a guidance gradient whose vanishing point is measured).

    results.json is written after the tables, with ``"complete": true``: a run killed before has a
    results.json marked incomplete (:func:`mark_incomplete`), which ``compare-plot`` refuses."""
    write_csv(out, records)
    levels = list(targets) if targets else (list(levels) if levels is not None else default_levels(records))
    table = tables(records, levels, targets)
    if targets:
        intro = ("Metrics at the γ found for each target judge accuracy (bisection on a pilot subset, then measured "
                 "on all the samples; no interpolation); mean ± std over seeds, with the accuracy reached and the γ "
                 "found; n = seeds counted when fewer than all.")
    else:
        intro = ("Metrics at matched judge accuracy (linear interpolation along each method's γ curve; mean ± std "
                 "over seeds; n = seeds whose curve reaches the level), and each method's best mean.")
    text = intro + (f" {note}" if note else "") + "\n\n" + table
    if paired is not None:
        text += "\n" + paired_markdown(paired)
        with atomic_write(out / "paired.json", "w") as fh:
            json.dump(paired, fh, indent=1)
    with atomic_write(out / "matched_accuracy.md", "w") as fh:
        fh.write(text)
    with atomic_write(out / "results.json", "w") as fh:
        json.dump({"records": records, **({"reference": reference} if reference else {}), "complete": True}, fh,
                  indent=1)
    if plots:
        from .plots import plot_frontier, plot_vanishing

        plot_frontier(records, out / "frontier.png")
        if any(r.get("vanishing") for r in records):
            plot_vanishing(records, profiles, out / "vanishing.png")
    return levels, text
