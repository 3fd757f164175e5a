"""``guidekit demo --toy``: EDS against plain classifier guidance on an exactly solvable toy.

:mod:`guidekit.toy` has a closed-form denoiser and Bayes classifier, so every difference comes from
the guidance scaler. The default demo runs the bundled mnist16 models (:mod:`guidekit.demo`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from .diffusion import GaussianDiffusion
from .guidance import ClassifierGuidance
from .registry import available, create
from .sampling import sample
from .toy import GaussianMixtureToy
from .trace import GuidanceTrace, plot_traces, write_text_atomic


def run_toy_demo(args: argparse.Namespace, sampler: Any) -> int:
    """The toy demo with ``sampler`` (built and checked by :func:`guidekit.demo.run_demo`)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    toy = GaussianMixtureToy(num_classes=10, shape=(1, 8, 8), std=0.5, separation=0.15, seed=args.seed)
    diffusion = GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=False, respacing=args.respacing)
    y = torch.arange(args.samples) % toy.num_classes
    runs = {"unguided": None, f"constant γ={args.gamma:g}": ("constant", args.gamma)}
    if "entropy" in available("scaler"):
        runs[f"entropy γ={args.eds_gamma:g}"] = ("entropy", args.eds_gamma)
    else:
        print("scaler 'entropy' not installed (pip install guidekit-eds, or in a guidekit checkout: "
              "pip install -e plugins/guidekit-eds); showing plain guidance only")
    rows, traces, grids = [], {}, [toy.means[y[:40]]]
    for name, spec in runs.items():
        trace = GuidanceTrace()
        guidance = None if spec is None else ClassifierGuidance(toy.classifier(), create("scaler", spec[0], gamma=spec[1]))
        start = time.perf_counter()
        x0 = sample(toy.denoiser(), diffusion, (args.samples, *toy.shape), sampler=sampler,
                    guidance=guidance, y=y, seed=args.seed, callback=trace, progress=not args.no_progress)
        seconds = time.perf_counter() - start
        acc = (toy.predict_class(x0) == y).float().mean().item()
        logp = torch.log_softmax(toy.log_weights(x0, torch.zeros(len(x0), dtype=torch.long))[0].double(), -1)
        conf = logp.gather(1, y.view(-1, 1)).exp().mean().item()
        rows.append((name, acc, conf, seconds))
        if spec is not None:
            traces[name] = trace
        grids.append(x0[:40])
    print(f"\n{'guidance':<22} {'class accuracy':>15} {'p(y|x0)':>9} {'seconds':>8}")
    for name, acc, conf, sec in rows:
        print(f"{name:<22} {acc:>15.3f} {conf:>9.3f} {sec:>8.2f}")
    summary = {name: {"accuracy": acc, "p_y_given_x0": conf, "seconds": sec} for name, acc, conf, sec in rows}
    summary["traces"] = {name: tr.summary() for name, tr in traces.items()}
    write_text_atomic(out / "demo.json", __import__("json").dumps(summary, indent=1))
    try:
        plot_traces(traces, out / "traces.png")
        print(f"trace plot: {out / 'traces.png'}")
    except ImportError:
        print("install matplotlib (pip install 'guidekit[plot]') for the trace plot")
    from .io import save_grid

    save_grid(torch.cat(grids), out / "samples.png", nrow=40)
    print(f"samples (rows: class templates, {', '.join(runs)}): {out / 'samples.png'}\nnumbers: {out / 'demo.json'}")
    return 0
