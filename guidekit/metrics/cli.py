"""``guidekit evaluate``: FID, sFID, IS, precision and recall of a sample batch against a reference.

    guidekit evaluate --ref REF.npz --samples SAMPLES.npz [--extractor inception-v3] \\
        [--extractor-path PATH | --inception-weights PATH] [--batch-size 64] [--out results.json] \\
        [--splits 10] [--k 3] [--device cpu]

Also runnable before the main command exists: ``python -m guidekit.metrics.cli --ref ... --samples ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guidekit.devices import resolve_device
from guidekit.errors import GuidekitError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` sub-command to a ``guidekit`` command line."""
    p = subparsers.add_parser(
        "evaluate",
        help="FID, sFID, IS, precision and recall of samples against a reference batch (ADM evaluator)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--ref", required=True, metavar="REF.npz",
                   help="reference batch: arr_0 uint8 NHWC images and/or precomputed mu, sigma, mu_s, sigma_s")
    p.add_argument("--samples", required=True, metavar="SAMPLES.npz", help="sample batch: arr_0 uint8 NHWC images")
    p.add_argument("--extractor", default="inception-v3",
                   help="feature extractor component (guidekit list extractor); default inception-v3")
    p.add_argument("--extractor-path", metavar="PATH", help="weights file of the extractor")
    p.add_argument("--inception-weights", metavar="PATH",
                   help="pt_inception-2015-12-05-6726825d.pth (same as --extractor-path for inception-v3)")
    p.add_argument("--batch-size", type=int, default=64, help="images per extractor call (default 64)")
    p.add_argument("--extractor-param", action="append", default=[], metavar="KEY=VALUE",
                   help="extractor parameter, repeatable")
    p.add_argument("--out", metavar="results.json", help="write the metrics as JSON here (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--splits", type=int, default=10, help="Inception Score splits (default 10)")
    p.add_argument("--k", type=int, default=3, help="nearest neighbour for precision/recall radii (default 3)")
    p.add_argument("--device", default="cpu", help="torch device for the extractor (default cpu)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show the progress bar (default: only on a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")
    p.set_defaults(func=run)
    return p


def _extractor(args: argparse.Namespace) -> Any:
    from guidekit.errors import InvalidParameterError
    from guidekit.registry import create

    path = args.extractor_path
    if args.inception_weights is not None:
        if args.extractor != "inception-v3":
            raise InvalidParameterError("--inception-weights is for --extractor inception-v3; use --extractor-path")
        if path is not None and path != args.inception_weights:
            raise InvalidParameterError("give the Inception weights once: --inception-weights or --extractor-path")
        path = args.inception_weights
    from guidekit.options import component_params, parse_params

    params = component_params("extractor", parse_params(args.extractor_param, "--extractor-param"),
                              device=args.device, path=path)
    return create("extractor", args.extractor, **params)


def format_table(results: dict[str, Any]) -> str:
    """A two-column text table of the five metrics."""
    from guidekit.metrics import METRIC_NAMES

    lines = [f"{'metric':<16} value"]
    for key in METRIC_NAMES:
        value = results.get(key)
        lines.append(f"{key:<16} {'n/a' if value is None else f'{value:.6g}'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``guidekit evaluate``; returns the exit status (0 ok, 2 on a guidekit or file error)."""
    with contextlib.ExitStack() as held:
        return _run(args, held)


def _run(args: argparse.Namespace, held: contextlib.ExitStack) -> int:
    """``run``, taking the lock of ``--out`` (into ``held``) once ``--out`` is checked."""
    from guidekit.io import atomic_write, output_lock
    from guidekit.metrics import evaluate

    try:
        for name in ("batch_size", "splits", "k"):
            if getattr(args, name) < 1:
                raise GuidekitError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        for flag, path in (("--ref", args.ref), ("--samples", args.samples)):
            if Path(path).is_dir():
                raise GuidekitError(f"{flag} {path} is a folder; give the ADM-layout .npz file (arr_0 uint8 NHWC)")
            if not Path(path).is_file():
                raise FileNotFoundError(f"{flag} {path}: no such file; give an ADM-layout .npz (arr_0 uint8 NHWC)")
        if args.out is not None:  # checked now, not after a long evaluation
            from guidekit.io import remove_stale_temporaries
            from guidekit.options import refuse_existing

            if any(Path(args.out).resolve() == Path(p).resolve() for p in (args.ref, args.samples)):
                raise GuidekitError(f"--out {args.out} is an input batch; write the results to another file")
            refuse_existing(args.out, args.overwrite, "--out")
            held.enter_context(output_lock(args.out, "guidekit evaluate"))  # one writer per results file
            refuse_existing(args.out, args.overwrite, "--out")  # again, held: a run that finished while we waited
            remove_stale_temporaries(args.out)
            from guidekit.io import probe_writable

            probe_writable(Path(args.out).parent, "--out's folder")  # read-only even for root (/proc): say so now
        from guidekit.identity import verify_recorded

        for flag, path in (("--ref", args.ref), ("--samples", args.samples)):  # a batch with a run record: its sha256
            verify_recorded(path, f"regenerate {flag} {path}, or restore it from a copy")
        from guidekit.io import load_batch
        from guidekit.metrics import check_comparable

        sample_batch = load_batch(args.samples)
        check_comparable(load_batch(args.ref), sample_batch)
        splits = min(args.splits, sample_batch.num_images) if sample_batch.has_images else None  # as evaluate() caps it
        resolve_device(args.device)
        extractor = _extractor(args)
        results: dict[str, Any] = evaluate(
            args.ref, args.samples, extractor, device=args.device, batch_size=args.batch_size, splits=args.splits,
            k=args.k, show_progress=args.progress,
        )
    except (GuidekitError, FileNotFoundError) as exc:
        print(f"guidekit evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    if args.out is not None:
        payload = {key: (None if v is None or not math.isfinite(v) else float(v)) for key, v in results.items()}
        payload.update({
            "extractor": args.extractor,
            "ref": str(args.ref),
            "samples": str(args.samples),
            "splits": splits,
            "k": args.k,
        })
        with atomic_write(args.out, "w") as fh:
            json.dump(payload, fh, indent=2, allow_nan=False)
            fh.write("\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m guidekit.metrics.cli [evaluate] --ref ... --samples ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "evaluate":
        argv = ["evaluate", *argv]
    parser = argparse.ArgumentParser(prog="guidekit")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
