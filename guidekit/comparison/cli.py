"""``guidekit compare``: guidance methods compared at matched judge accuracy, with paired seeds.

Example (per method and seed, the γ reaching each target accuracy is found by bisection on the first
--pilot-samples samples, then FD/KID are measured there on all the samples; paired.json compares
every method with --baseline)::

    guidekit compare --model mnist16-unet --classifier mnist16-classifier-ce --classifier mnist16-classifier-ect \\
        --scaler constant --scaler entropy --target-accuracy 0.8,0.9,0.95 --seeds 3 --num-samples 1000 \\
        --respacing ddim25 --judge mnist16-oracle --out DIR

A γ grid instead of targets (the metrics then interpolated along each γ curve)::

    guidekit compare ... --scaler constant:0,1,2,4 --scaler entropy:0,0.5,1,2 --out DIR

Classifier-free guidance of a class-conditional model (its null label from the model card; w swept as γ,
w = 1 is conditional sampling; timestep.schedule sweeps Wang et al.'s schedules, one curve each)::

    guidekit compare --model mnist16-unet-cond --guidance classifier-free \
        --scaler constant:1,2,3 --scaler interval:1,2,3 --scaler timestep:1,2,3 \
        --scaler-param "timestep.schedule=['linear','cosine']" --seeds 3 --num-samples 1000 \
        --respacing ddim25 --judge mnist16-oracle --out DIR2

``guidekit compare-plot DIR DIR2 --out DIR3`` puts several runs on one frontier.

FD and KID are measured in the judge's features (``oracle``) and in the feature spaces its card names
(``pca``: pixels, no classes), against the held-out reference the model card names; a reference that
holds training images of the model, a classifier, the judge or a feature space is refused
(--allow-reference-overlap measures anyway). Writes results.json / results.csv (one record per cell),
matched_accuracy.md (printed too), paired.json, frontier.png and vanishing.png into ``--out``; cells
are cached there by content, so an interrupted run resumes and the same command again computes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InvalidParameterError


def _seeds(text: str) -> int | list[int]:
    try:
        return int(text) if "," not in text else [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes a count (3) or a list (0,1,2), got {text!r}") from None


def _targets(text: str) -> list[float]:
    try:
        targets = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--target-accuracy takes accuracies such as 0.8,0.9,0.95, got {text!r}") from None
    return targets  # their range is checked by compare(), with the other options


def _levels(text: str) -> list[float]:
    try:
        levels = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--accuracy-levels takes numbers such as 0.6,0.8,0.9, got {text!r}") from None
    if not levels or not all(0.0 <= level <= 1.0 for level in levels):
        raise argparse.ArgumentTypeError(f"--accuracy-levels are accuracies between 0 and 1 such as 0.6,0.8,0.9, "
                                         f"got {text!r}")
    return levels


#: --pilot-samples, --bisect-steps and --tolerance when --target-accuracy is given without them
SEARCH_DEFAULTS = {"pilot_samples": 200, "bisect_steps": 6, "tolerance": 0.01}


def remove_temporaries(out: Path) -> None:
    """Delete the temporary files that runs killed while writing left in ``out`` (call it holding the lock)."""
    for folder in (out, out / "cells", out / "reference", out / "samples"):
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            tmp.unlink(missing_ok=True)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compare", help="compare guidance scalers on the accuracy–FD frontier (paired seeds)",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", required=True, help="network name (mnist16-unet, an ADM release, or an ADM flag string)")
    p.add_argument("--model-path", type=Path, help="checkpoint of the model (loaded strictly, weights_only)")
    p.add_argument("--classifier", action="append", default=[],
                   help="classifier network name; repeatable (needed by classifier and x0-classifier guidance)")
    p.add_argument("--classifier-path", action="append", default=[], type=Path,
                   help="checkpoint of each --classifier, in the same order; repeatable")
    p.add_argument("--guidance", default="classifier",
                   help="guidance kind, one per run (classifier, classifier-free, cfg-rescale, apg, x0-classifier; "
                   "`guidekit list guidance`); default classifier")
    p.add_argument("--guidance-param", action="append", default=[], metavar="KEY=VALUE",
                   help="guidance parameter for every cell, repeatable (null_label=10, phi=0.7, eta=0, momentum=-0.5)")
    p.add_argument("--scaler", action="append", required=True, metavar="NAME[:V1,V2,...]",
                   help="a scaler and the γ values it is swept over, e.g. entropy:0,0.5,1; repeatable. With "
                   "--target-accuracy the values (optional) are the ladder that brackets each target "
                   "(default 0,1,2,4,...,64)")
    p.add_argument("--target-accuracy", type=_targets, metavar="A1,A2,...",
                   help="find, per method and seed, the γ reaching each judge accuracy (bisection on a pilot "
                   "subset) and measure there; e.g. 0.8,0.9,0.95")
    p.add_argument("--pilot-samples", type=int,
                   help="samples of each seed whose accuracy the bisection reads (the first ones; default 200)")
    p.add_argument("--bisect-steps", type=int, help="at most this many halvings of the γ bracket (default 6)")
    p.add_argument("--tolerance", type=float,
                   help="stop the bisection when a pilot accuracy is this close to the target (default 0.01)")
    p.add_argument("--baseline", metavar="CLASSIFIER/SCALER",
                   help="the method every other is paired with in paired.json (default: the first classifier with "
                   "constant; for a guidance without classifier: GUIDANCE/constant)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates of the paired CIs (default 1000)")
    p.add_argument("--scaler-param", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="another parameter of a scaler (interval.end=700); a list value ([500,700]) sweeps it")
    p.add_argument("--seeds", type=_seeds, default=3, help="number of seeds (0..N-1) or a list 0,1,2 (default 3)")
    p.add_argument("--num-samples", type=int, default=1000, help="samples per cell (default 1000)")
    p.add_argument("--respacing", help="e.g. ddim25 or 100 (default: the model's)")
    p.add_argument("--sampler", help="any registered sampler (default: ddim for ddimN respacing, else ddpm)")
    p.add_argument("--sampler-param", action="append", default=[], metavar="KEY=VALUE", help="sampler parameter")
    p.add_argument("--judge", default="mnist16-oracle", help="extractor judging accuracy and features (default mnist16-oracle)")
    p.add_argument("--judge-weights", type=Path, help="weights file of the judge (e.g. the FID Inception's)")
    p.add_argument("--reference", type=Path, help="reference batch .npz (ADM layout); default: the held-out batch "
                   "the model card names")
    p.add_argument("--allow-reference-overlap", action="store_true",
                   help="measure against a reference that holds training images of the model, a classifier, the judge "
                   "or a feature space (refused by default)")
    p.add_argument("--features", action="append", metavar="LABEL=EXTRACTOR",
                   help="a feature space for FD/KID besides the judge's (oracle), repeatable, e.g. pca=mnist16-pca; "
                   "default: the spaces the judge's card names")
    p.add_argument("--accuracy-levels", type=_levels, help="accuracies for the matched table (default: 3 inside the "
                   "range every method reaches)")
    p.add_argument("--threshold", type=float, default=0.1, help="vanishing point: ‖s·∇‖ below this fraction of its peak")
    p.add_argument("--k", type=int, default=3, help="neighbourhood size of precision/recall (default 3)")
    p.add_argument("--pr-limit", type=int, default=10000, help="at most this many reference images for precision/recall")
    p.add_argument("--batch-size", type=int, default=500, help="samples drawn at once (default 500)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... or auto")
    p.add_argument("--save-samples", action="store_true", help="also keep the samples (.npz) of each cell computed now under DIR/samples")
    p.add_argument("--no-dedupe", dest="dedupe", action="store_false",
                   help="sample γ = 0 cells each on their own instead of sharing one unguided run per seed")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip the plots")
    p.add_argument("--clip-denoised", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--out", required=True, type=Path, help="output folder (also the cache a rerun resumes from)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..io import output_lock
    from ..options import check_guidance_params, check_writable, parse_params
    from . import compare

    check_guidance_params(args.guidance, parse_params(args.guidance_param, "--guidance-param"))
    if len(args.classifier_path) not in (0, len(args.classifier)):
        raise InvalidParameterError(f"{len(args.classifier_path)} --classifier-path for {len(args.classifier)} "
                                    "--classifier; give one path per classifier, in the same order")
    search = {"--pilot-samples": args.pilot_samples, "--bisect-steps": args.bisect_steps, "--tolerance": args.tolerance}
    if args.target_accuracy is None and any(v is not None for v in search.values()):
        given = [flag for flag, v in search.items() if v is not None]
        raise InvalidParameterError(f"{', '.join(given)} {'tunes' if len(given) == 1 else 'tune'} the γ search of "
                                    "--target-accuracy, which is not given (a γ grid is measured at its values); give "
                                    f"--target-accuracy, or drop {'it' if len(given) == 1 else 'them'}")
    pilot, steps, tolerance = (SEARCH_DEFAULTS[key] if value is None else value
                               for key, value in zip(SEARCH_DEFAULTS, search.values()))
    check_writable(args.out, "--out")
    try:
        with output_lock(args.out, "guidekit compare"):  # one writer per --out (its cells are cached there)
            remove_temporaries(args.out)
            result = compare(
                args.model, args.classifier, args.scaler, out=args.out, guidance=args.guidance,
                guidance_params=args.guidance_param, scaler_params=args.scaler_param, seeds=args.seeds,
                num_samples=args.num_samples, respacing=args.respacing, sampler=args.sampler,
                sampler_params=args.sampler_param, model_path=args.model_path, classifier_paths=args.classifier_path,
                judge=args.judge, judge_weights=args.judge_weights, reference_batch=args.reference,
                features=args.features, allow_reference_overlap=args.allow_reference_overlap,
                targets=args.target_accuracy, pilot_samples=pilot, bisect_steps=steps, tolerance=tolerance,
                baseline=args.baseline, bootstrap=args.bootstrap,
                batch_size=args.batch_size, device=args.device, k=args.k, pr_limit=args.pr_limit,
                threshold=args.threshold, accuracy_levels=args.accuracy_levels, save_samples=args.save_samples,
                dedupe=args.dedupe, plots=args.plots, show_progress=args.progress, clip_denoised=args.clip_denoised,
            )
    except (FileNotFoundError, ImportError) as exc:
        print(f"guidekit compare: error: {exc}", file=sys.stderr)
        return 1
    print(result.table)
    print(f"wrote {len(result.records)} records to {result.out}/results.json (and results.csv, matched_accuracy.md, "
          "paired.json"
          + (", frontier.png" + (", vanishing.png)" if (result.out / "vanishing.png").is_file() else ")")
             if args.plots else ")"), file=sys.stderr)
    return 0
