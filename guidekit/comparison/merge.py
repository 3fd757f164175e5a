"""``guidekit compare-plot``: several comparison runs on one frontier (e.g. CFG on a conditional model
next to classifier guidance on an unconditional one).

Each run's records are read from its ``results.json``; FD is comparable across runs only when they
are judged alike, so runs whose judge, feature spaces, reference (its content sha256), samples per cell,
image shape or precision/recall settings differ are refused. Other differences (model, guidance,
sampler) are what one compares, and are listed on stderr. A method appearing in several runs gets the
run's folder name in its label. Runs made with ``--target-accuracy`` at the same targets are paired too
(``paired.json`` against ``--baseline``): the seeds draw the same initial noise and labels in every run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError
from .cli import _levels
from .grid import canonical
from .matched import method_of

#: manifest entries that must agree for FD and accuracy to be comparable
SAME_JUDGING = ("judge", "features", "reference", "num_samples", "image_shape", "k", "pr_limit", "labels")


def read_run(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, records) of one finished ``guidekit compare`` output folder; the manifest's ``reference`` is
    the reference results.json records (its sha256 and feature spaces), where the run was judged."""
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(f"{folder} is a file; give guidekit compare --out folders")
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        results = json.loads((folder / "results.json").read_text())
        records = results["records"]
    except FileNotFoundError as exc:
        raise InvalidParameterError(f"{folder} is not a finished guidekit compare folder: {exc.filename} is missing") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidParameterError(f"{folder}: unreadable manifest.json or results.json ({exc})") from None
    if results.get("complete") is False:
        raise InvalidParameterError(f"{folder} holds an unfinished guidekit compare run (interrupted, or still "
                                    "running), whose results.json lacks cells; run its command again to finish it (the "
                                    "cells computed are reused), then merge")
    if isinstance(results.get("reference"), dict):
        manifest = {**manifest, "reference": {k: results["reference"].get(k) for k in ("sha256", "id", "features")}}
    return manifest, records


def _paired(runs: list[tuple[Path, dict[str, Any], list[dict[str, Any]]]], merged: list[dict[str, Any]],
            baseline: str | None, replicates: int) -> dict[str, Any] | None:
    """paired.json of the merged target-accuracy records (None when the runs have no targets)."""
    from . import cell_bootstrap
    from .matched import method_name
    from .paired import paired_rows
    from .reference import cached_stats

    if not any(r.get("target_accuracy") is not None for r in merged):
        return None
    methods = list(dict.fromkeys(method_name(r) for r in merged))
    if baseline is None:
        baseline = next((m for m in methods if m.endswith("/constant")), methods[0])
    if baseline not in methods:
        raise InvalidParameterError(f"--baseline {baseline!r} is not a method of the merged runs; they have "
                                    f"{', '.join(methods)}")
    owners = [folder for folder, _, records in runs for _ in records]  # merged keeps the runs' record order
    folders = {id(r): folder for folder, r in zip(owners, merged)}
    manifests = {folder: manifest for folder, manifest, _ in runs}

    def boot(record: dict[str, Any], feature: str) -> Any:
        folder = folders[id(record)]
        manifest = manifests[folder]
        ref = manifest["reference"]
        stats = cached_stats(folder, ref["sha256"], manifest["features"][feature], manifest["k"], manifest["pr_limit"])
        if stats is None:
            raise InvalidParameterError(f"{folder}/reference/ lacks the {feature} reference statistics; rerun its "
                                        "guidekit compare command (it recomputes nothing else)")
        return cell_bootstrap(folder, record, feature, ref["id"], stats, replicates)

    return {"baseline": baseline, "rows": paired_rows(merged, baseline, method_name, boot)}


def merge_runs(folders: Sequence[str | Path], out: str | Path, *, accuracy_levels: Sequence[float] | None = None,
               plots: bool = True, baseline: str | None = None, bootstrap: int = 1000) -> Any:
    """Write the merged ``results.json``/``.csv``, ``matched_accuracy.md``, ``paired.json`` (runs with
    target accuracies) and ``frontier.png`` into ``out``."""
    from . import CompareResult, write_outputs

    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise InvalidParameterError("give at least two compare folders to put on one frontier")
    runs = [(f, *read_run(f)) for f in folders]
    first_dir, first, _ = runs[0]
    for folder, manifest, _ in runs[1:]:
        bad = [k for k in SAME_JUDGING if canonical(manifest.get(k)) != canonical(first.get(k))]
        if bad:
            raise InvalidParameterError(
                f"{folder} and {first_dir} are judged differently ({', '.join(bad)}), so their FD and accuracy are "
                "not comparable; rerun one of them with the other's options")
        other = sorted(k for k in set(manifest) | set(first)
                       if k not in SAME_JUDGING and canonical(manifest.get(k)) != canonical(first.get(k)))
        if other:
            print(f"guidekit compare-plot: {folder} differs from {first_dir} in: {', '.join(other)}", file=sys.stderr)
    kinds = {folder: any(r.get("target_accuracy") is not None for r in records) for folder, _, records in runs}
    if len(set(kinds.values())) > 1:
        targeted = [str(f) for f, k in kinds.items() if k]
        grids = [str(f) for f, k in kinds.items() if not k]
        raise InvalidParameterError(
            f"{', '.join(targeted)} measured at --target-accuracy and {', '.join(grids)} on a γ grid: one table cannot "
            "hold both (the grid's methods would be left out); merge runs of one kind")
    owners: dict[tuple[str, str], set[Path]] = {}
    for folder, _, records in runs:
        for r in records:
            owners.setdefault(method_of(r), set()).add(folder)
    merged = []
    names = [f.resolve().name or str(f) for f in folders]
    if len(set(names)) != len(names):
        names = [str(f) for f in folders]
    for (_, _, records), name in zip(runs, names):
        for r in records:
            merged.append({**r, "run": name} if len(owners[method_of(r)]) > 1 else dict(r))
    out = Path(out)
    if out.resolve() in {f.resolve() for f in folders}:
        raise InvalidParameterError(f"--out {out} is one of the merged runs; give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    targets = sorted({float(r["target_accuracy"]) for r in merged if r.get("target_accuracy") is not None}) or None
    if targets and accuracy_levels is not None:
        raise InvalidParameterError("--accuracy-levels interpolates γ grids; these runs have target accuracies")
    paired = _paired(runs, merged, baseline, bootstrap)
    levels, table = write_outputs(out, merged, {}, accuracy_levels, plots, targets=targets, paired=paired,
                                  reference=runs[0][1].get("reference"))
    return CompareResult(merged, levels, table, out, paired)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compare-plot", help="several guidekit compare runs on one frontier and matched table",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="guidekit compare --out folders")
    p.add_argument("--out", required=True, type=Path, help="folder for the merged results, table and frontier.png")
    p.add_argument("--accuracy-levels", type=_levels,
                   help="accuracies for the matched table (default: 3 inside the range every method reaches)")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip frontier.png")
    p.add_argument("--baseline", metavar="CLASSIFIER/SCALER",
                   help="the method paired.json compares every other with (default: the first .../constant)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates of the paired CIs (default 1000)")
    p.add_argument("--overwrite", action="store_true", help="replace the merged results of an earlier compare-plot in --out")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..options import check_writable

    seen = set()
    for folder in args.runs:
        if folder.resolve() in seen:
            raise InvalidParameterError(f"{folder} is given twice; give each compare folder once")
        seen.add(folder.resolve())
    if args.out.resolve() in seen:
        raise InvalidParameterError(f"--out {args.out} is one of the merged runs; give a new folder")
    if args.out.exists() and not args.out.is_dir():
        raise InvalidParameterError(f"--out {args.out} is a file; give a folder (it is created if missing)")
    check_writable(args.out, "--out")
    if (args.out / "results.json").exists() and not args.overwrite:
        raise InvalidParameterError(f"--out {args.out} holds results already; pass --overwrite to replace them, "
                                    "or choose another --out")
    result = merge_runs(args.runs, args.out, accuracy_levels=args.accuracy_levels, plots=args.plots,
                        baseline=args.baseline, bootstrap=args.bootstrap)
    print(result.table)
    print(f"wrote {len(result.records)} records from {len(args.runs)} runs to {result.out}/results.json "
          "(and results.csv, matched_accuracy.md" + (", paired.json" if result.paired is not None else "")
          + (", frontier.png)" if args.plots else ")"), file=sys.stderr)
    return 0
