"""``guidekit demo``: guidance strategies on real digits, with the bundled mnist16 models.

The same classes from the same noise (paired seeds) are sampled with no guidance, constant classifier
guidance, entropy-driven scaling (EDS, paper Eq. 10), EDS with the ECT classifier (paper Eq. 12) and
classifier-free guidance of the class-conditional model;
the ``mnist16-oracle`` (a clean-image classifier that never guides) judges them. Writes a sample
grid, a trace plot in the style of the paper's Fig. 1/3 and ``demo.json``; prints a table.
``--toy`` runs the exactly solvable Gaussian-mixture toy instead (:mod:`guidekit.demo_toy`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .demo_explain import explain
from .diffusion import GaussianDiffusion
from .errors import GuidekitError, InvalidParameterError
from .guidance import ClassifierGuidance
from .io import atomic_write, load_batch, save_grid, to_uint8
from .metrics import FeatureStats, frechet_distance
from .metrics.precision_recall import precision_recall
from .networks import load_network
from .registry import available, create
from .sampling import sample
from .trace import GuidanceTrace, plot_traces, write_text_atomic

BUNDLED = ("mnist16-unet", "mnist16-classifier-ce", "mnist16-classifier-ect", "mnist16-oracle")
DEFAULT_GAMMA = 4.0
DEFAULT_OUT = "guidekit-demo"
DEFAULT_CFG_W = 2.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None,
                   help=f"folder for the grid, trace plot and JSON (default: {DEFAULT_OUT}, or {DEFAULT_OUT}-2, -3 ... "
                   "when it holds an earlier demo)")
    p.add_argument("--samples", type=int, default=200, help="samples per strategy (default: %(default)s)")
    p.add_argument("--respacing", default="ddim25", help="respacing of the 1000-step process (default: %(default)s)")
    p.add_argument("--sampler", default="ddim", help="any registered sampler (default: %(default)s)")
    p.add_argument("--sampler-param", action="append", default=[], metavar="KEY=VALUE",
                   help="sampler parameter, repeatable (e.g. eta=0.5)")
    p.add_argument("--gamma", type=float, default=None,
                   help=f"γ of constant guidance (default: {DEFAULT_GAMMA:g}; 1 with --toy)")
    p.add_argument("--eds-gamma", type=float, default=None, help="γ of EDS (default: the same as --gamma)")
    p.add_argument("--cfg-w", type=float, default=DEFAULT_CFG_W,
                   help="w of the classifier-free guidance row on mnist16-unet-cond; 0 leaves it out (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--toy", action="store_true", help="the analytic Gaussian-mixture toy instead of the bundled models")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier demo in --out")


def _earlier_demo(folder: Path) -> list[str]:
    """The files of an earlier demo in ``folder``."""
    return [name for name in ("demo.json", "samples.png", "traces.png") if (folder / name).exists()]


def _out_folder(out: str | None, overwrite: bool) -> str:
    """``--out``, refused if it holds an earlier demo (unless ``--overwrite``); without ``--out`` the first of
    guidekit-demo, guidekit-demo-2, ... that holds none, so a rerun keeps the earlier results."""
    if out is not None:
        earlier = _earlier_demo(Path(out))
        if earlier and not overwrite:
            raise InvalidParameterError(f"--out {out} holds an earlier demo ({', '.join(earlier)}); pass --overwrite "
                                        "to replace it, or choose another --out")
        return out
    candidates = (DEFAULT_OUT if n == 1 else f"{DEFAULT_OUT}-{n}" for n in itertools.count(1))
    chosen = DEFAULT_OUT if overwrite else next(c for c in candidates if not _earlier_demo(Path(c)))
    if chosen != DEFAULT_OUT:
        print(f"{DEFAULT_OUT}/ holds an earlier demo; writing this one to {chosen}/ (--overwrite replaces the earlier)")
    return chosen


def run_demo(args: argparse.Namespace) -> int:
    from .options import check_respacing, check_writable, parse_params

    if args.samples < 10:
        raise InvalidParameterError(f"--samples must be at least 10 (one per class), got {args.samples}")
    sampler_params = parse_params(args.sampler_param, "--sampler-param")
    sampler = create("sampler", args.sampler, **sampler_params)
    check_respacing(args.respacing, 1000)  # the toy's and the bundled models' processes have 1000 steps
    if args.cfg_w < 0:
        raise InvalidParameterError(f"--cfg-w must be >= 0 (0 leaves the classifier-free row out), got {args.cfg_w:g}")
    args.out = _out_folder(args.out, args.overwrite)
    check_writable(args.out, "--out")
    if args.toy:
        from .demo_toy import run_toy_demo

        args.gamma = 1.0 if args.gamma is None else args.gamma
        args.eds_gamma = args.gamma if args.eds_gamma is None else args.eds_gamma
        return run_toy_demo(args, sampler)
    missing = [name for name in BUNDLED if name not in available("network")]
    if missing:
        raise GuidekitError(
            f"the demo needs the bundled models {', '.join(missing)} from the guidekit-mnist16 distribution: "
            "pip install guidekit-mnist16 (in a checkout: pip install -e plugins/guidekit-mnist16), "
            "or run `guidekit demo --toy`"
        )
    gamma = DEFAULT_GAMMA if args.gamma is None else args.gamma
    eds_gamma = gamma if args.eds_gamma is None else args.eds_gamma
    has_eds = "entropy" in available("scaler")
    unet = load_network("mnist16-unet")
    oracle = create("extractor", "mnist16-oracle")
    classifiers = {name: load_network(f"mnist16-classifier-{name}") for name in ("ce", "ect")}
    diffusion = GaussianDiffusion.from_model(unet, respacing=args.respacing)
    roles = {"none": "no guidance", "constant": f"constant γ={gamma:g} (CE)", "eds": f"EDS γ={eds_gamma:g} (CE)"}
    runs: dict[str, tuple[Any, Any]] = {  # name -> (diffusion model, guidance)
        roles["none"]: (unet, None),
        roles["constant"]: (unet, ClassifierGuidance(classifiers["ce"], "constant", gamma=gamma)),
    }
    if has_eds:
        runs[roles["eds"]] = (unet, ClassifierGuidance(classifiers["ce"], "entropy", gamma=eds_gamma))
        runs[f"EDS γ={eds_gamma:g} (ECT)"] = (unet, ClassifierGuidance(classifiers["ect"], "entropy", gamma=eds_gamma))
    else:
        print("scaler 'entropy' not installed (pip install guidekit-eds, or in a guidekit checkout: "
              "pip install -e plugins/guidekit-eds): showing constant guidance only")
    if args.cfg_w > 0 and "mnist16-unet-cond" in available("network"):
        cond = load_network("mnist16-unet-cond")
        runs[f"CFG w={args.cfg_w:g} (cond. UNet)"] = (cond, create("guidance", "classifier-free", scaler="constant",
                                                                     gamma=args.cfg_w))
    reference = Reference.of(oracle, unet.card)
    y = torch.arange(args.samples) % 10
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    traces: dict[str, GuidanceTrace] = {}
    images: dict[str, torch.Tensor] = {}
    for index, (name, (model, guidance)) in enumerate(runs.items(), 1):
        print(f"strategy {index}/{len(runs)}: {name}", file=sys.stderr, flush=True)
        trace = GuidanceTrace()
        start = time.perf_counter()
        x0 = sample(model, diffusion, (args.samples, 1, 16, 16), sampler=sampler, guidance=guidance, y=y,
                    seed=args.seed, callback=trace, progress=not args.no_progress)
        seconds = time.perf_counter() - start
        images[name] = to_uint8(x0)
        rows[name] = {**reference.judge(oracle, images[name], y), "seconds": seconds}
        if isinstance(guidance, ClassifierGuidance):  # CFG has no classifier gradient to trace
            traces[name] = trace
            vp = trace.vanishing_points(0.1)
            rows[name]["vanished_fraction"] = float(torch.isfinite(vp).double().mean())
    _print_table(rows)
    explanation = explain(rows, roles, args.samples, gamma, eds_gamma)
    if explanation:
        _print_explanation(explanation)
    summary = {"settings": {"samples": args.samples, "respacing": args.respacing, "sampler": args.sampler,
                            "sampler_params": sampler_params,
                            "seed": args.seed, "gamma": gamma, "eds_gamma": eds_gamma, "cfg_w": args.cfg_w},
               "results": rows, "explanation": explanation, "traces": {name: tr.summary() for name, tr in traces.items()}}
    write_text_atomic(out / "demo.json", json.dumps(summary, indent=1))
    _write_grid(out / "samples.png", images, per_row=min(args.samples, 30))
    print(f"samples (one row per strategy, the same noise and classes in every row): {out / 'samples.png'}")
    try:
        plot_traces(traces, out / "traces.png")
        print(f"guidance traces (Fig. 1/3 of the paper: entropy, p(y|x_t), gradient norm, scale, vanishing points): "
              f"{out / 'traces.png'}")
    except ImportError:
        print("install matplotlib (pip install 'guidekit[plot]') for the trace plot")
    print(f"numbers: {out / 'demo.json'}")
    return 0


class Reference:
    """Oracle features of the held-out mnist16 images (``card["reference_batch"]``: no model trained on them):
    FD statistics and the precision/recall set."""

    def __init__(self, feats: np.ndarray) -> None:
        stats = FeatureStats().update(feats)
        self.mu, self.sigma, self.feats = stats.mean, stats.cov, feats

    @classmethod
    def of(cls, oracle: Any, card: dict[str, Any]) -> Reference:
        batch = load_batch(card["reference_batch"])
        with torch.no_grad():
            feats = oracle.extract(np.asarray(batch.images()))["pool"].double().numpy()
        return cls(feats)

    def judge(self, oracle: Any, images: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Oracle accuracy against the requested labels, FD, precision and recall (k=3)."""
        with torch.no_grad():
            out = oracle.extract(images)
        feats = out["pool"].double().numpy()
        stats = FeatureStats().update(feats)
        precision, recall = precision_recall(self.feats, feats, k=3)
        with warnings.catch_warnings():  # a few hundred samples: the ADM evaluator's 1e-6 diagonal fix-up is expected
            warnings.simplefilter("ignore", RuntimeWarning)
            fd = frechet_distance(stats.mean, stats.cov, self.mu, self.sigma)
        return {"accuracy": float((out["logits"].argmax(1) == y).double().mean()), "fd": fd,
                "precision": precision, "recall": recall}


def _print_table(rows: dict[str, dict[str, Any]]) -> None:
    print(f"\n{'strategy':<22} {'oracle acc':>10} {'FD':>8} {'precision':>9} {'recall':>7} {'vanished':>8} {'seconds':>8}")
    for name, r in rows.items():
        vanished = f"{r['vanished_fraction']:.2f}" if "vanished_fraction" in r else "-"
        print(f"{name:<22} {r['accuracy']:>10.3f} {r['fd']:>8.2f} {r['precision']:>9.3f} {r['recall']:>7.3f} "
              f"{vanished:>8} {r['seconds']:>8.1f}")
    print("oracle acc: the clean-image oracle agrees with the requested class; FD: Fréchet distance to the real "
          "held-out digits on oracle features (lower is closer); vanished: share of samples whose guidance fell below 10% "
          "of its peak before the end\n")


def _print_explanation(sentences: list[str]) -> None:
    """The sentences wrapped to 110 columns; a `command` in them goes on its own line, whole, to copy."""
    text = " ".join(sentences)
    before, tick, rest = text.partition(" `")
    command, _, after = rest.partition("`")
    print(textwrap.fill(before, width=110, break_on_hyphens=False))
    if tick:
        print(f"  {command}")
        if after.strip(" ."):
            print(textwrap.fill(after.strip(), width=110, break_on_hyphens=False))
    print()


def _write_grid(path: Path, images: dict[str, torch.Tensor], per_row: int, scale: int = 4) -> None:
    """One row per strategy, upscaled ``scale``x (nearest) so the 16x16 digits can be read; labelled with matplotlib."""
    rows = [img[:per_row] for img in images.values()]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        save_grid(torch.cat(rows), path, nrow=per_row, scale=scale)
        return
    from .io import make_grid

    fig, axes = plt.subplots(len(rows), 1, figsize=(per_row * 0.42 + 2.2, len(rows) * 0.62 + 0.3))
    for ax, (name, img) in zip(np.atleast_1d(axes), images.items()):
        row = make_grid(img[:per_row], nrow=per_row, padding=2, pad_value=64, scale=scale)
        ax.imshow(row[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
