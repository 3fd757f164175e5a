"""Study: fast solvers with classifier guidance on a diffusers-format model (issue 17, item 5).

The bundled ``mnist16-unet`` (ADM) is converted exactly into a diffusers ``UNet2DModel``
(``adm_to_diffusers.py``, max abs difference ~1e-6) and wrapped by ``guidekit_diffusers.from_diffusers``
with a ``DDPMScheduler(variance_type="learned_range")``. For each solver and number of steps, ``gk.compare``
sweeps classifier guidance (``mnist16-classifier-ce``) with the constant scaler and with EDS (``entropy``,
guidekit-eds) over γ with paired seeds, judged by ``mnist16-oracle`` against the 500 held-out mnist16 images
(``load_dataset("mnist16").split(500, seed=0)[1]``, the models' held-out split). Every solver uses one
network evaluation per step (plus one classifier gradient), so NFE = steps.

Timesteps: ddim, dpmpp-2m and unipc run diffusers' DPM-Solver default ("linspace", from t = 999);
euler runs Karras sigmas (rounded to integer timesteps): on the same timesteps Euler is DDIM (η = 0).

    python benchmarks/solvers.py --samples 100 --seeds 3 --out benchmarks/results/solvers
    python benchmarks/solvers.py --summarise-only --out benchmarks/results/solvers     # README from results.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import guidekit as gk  # noqa: E402
import guidekit.data  # noqa: E402
import guidekit.io  # noqa: E402
from guidekit.comparison.matched import interpolate_at, summarise  # noqa: E402

NAME = "mnist16-unet-diffusers"
SOLVERS = ("ddim", "dpmpp-2m", "unipc", "euler")
SCALERS = ("constant:0,2,4", "entropy:1,2")
LEVELS = (0.7, 0.8, 0.9)  # fixed before the runs
LABELS = {"euler": "euler (Karras)"}


def respacing(solver: str, steps: int) -> str:
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler
    from guidekit_diffusers import respacing_of

    scheduler = EulerDiscreteScheduler(use_karras_sigmas=True) if solver == "euler" else DPMSolverMultistepScheduler()
    return respacing_of(scheduler, steps)


def register_model() -> Any:
    from adm_to_diffusers import convert
    from diffusers import DDPMScheduler
    from guidekit_diffusers import from_diffusers

    unet = convert(gk.create("network", "mnist16-unet"))
    model, _ = from_diffusers(unet, DDPMScheduler(variance_type="learned_range"))
    model.card.update(name=NAME, converted_from="mnist16-unet", conversion_max_abs_diff=unet.conversion_error)
    gk.register_network(NAME, replace=True, summary="mnist16-unet converted to a diffusers UNet2DModel")(lambda: model)
    return model


def reference(out: Path) -> Path:
    held = gk.data.load_dataset("mnist16").split(500, seed=0)[1]
    return gk.io.write_reference_batch(out / "heldout500.npz", gk.io.to_uint8(held.images))


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    model = register_model()
    ref = reference(args.out)
    for solver in SOLVERS:
        for steps in args.steps:
            folder = args.out / f"{solver}-{steps}"
            start = time.perf_counter()
            gk.compare(model=NAME, classifiers=["mnist16-classifier-ce"], scalers=list(SCALERS), seeds=args.seeds,
                       num_samples=args.samples, batch_size=args.samples, respacing=respacing(solver, steps),
                       sampler=solver, reference_batch=ref, judge="mnist16-oracle", out=folder, plots=False,
                       show_progress=False)
            print(f"{solver} {steps} steps: {time.perf_counter() - start:.0f} s", flush=True)
    (args.out / "model_card.json").write_text(json.dumps({k: model.card[k] for k in (
        "name", "converted_from", "conversion_max_abs_diff", "architecture", "diffusion", "prediction_type")},
        indent=1) + "\n")


def _curves(records: list[dict[str, Any]]) -> dict[str, dict[int, list[tuple[float, float, float]]]]:
    """scaler -> seed -> [(γ, accuracy, FD)], the γ = 0 cell in both curves."""
    out: dict[str, dict[int, list[tuple[float, float, float]]]] = {}
    for rec in records:
        gamma = float(rec["params"].get("gamma", 0.0))
        names = [rec["scaler"]] if gamma else [s.split(":")[0] for s in SCALERS]
        for name in names:
            out.setdefault(name, {}).setdefault(int(rec["seed"]), []).append((gamma, rec["accuracy"], rec["fd"]))
    return out


def summarise_runs(out: Path, steps: list[int]) -> tuple[str, dict[str, Any]]:
    rows, points, data = [], [], {}
    for solver in SOLVERS:
        for n in steps:
            path = out / f"{solver}-{n}" / "results.json"
            if not path.is_file():
                continue
            curves = _curves(json.loads(path.read_text())["records"])
            for scaler, seeds in sorted(curves.items()):
                matched = [summarise(interpolate_at(*zip(*pts), level) for pts in seeds.values()) for level in LEVELS]
                by_gamma: dict[float, list[tuple[float, float]]] = {}
                for pts in seeds.values():
                    for g, a, f in pts:
                        by_gamma.setdefault(g, []).append((a, f))
                cells = "; ".join(f"γ={g:g}: {np.mean([a for a, _ in v]):.3f} / {np.mean([f for _, f in v]):.2f}"
                                  for g, v in sorted(by_gamma.items()))
                rows.append(f"| {LABELS.get(solver, solver)} | {n} | {scaler} | " + " | ".join(m.text(len(seeds)) for m in matched)
                            + f" | {cells} |")
                data[f"{solver}/{n}/{scaler}"] = {"matched": [[m.mean, m.std, m.n] for m in matched],
                                                  "cells": {str(g): v for g, v in by_gamma.items()}}
                points.append((solver, n, scaler, matched))
    head = ("| solver | NFE (steps) | scaler | " + " | ".join(f"FD @ acc {a:g}" for a in LEVELS)
            + " | mean accuracy / FD per γ (over seeds) |\n|" + "---|" * (4 + len(LEVELS)))
    return head + "\n" + "\n".join(rows), {"levels": LEVELS, "rows": data, "points": points}


def plot(points: list[tuple[str, int, str, list[Any]]], rows: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LEVELS) + 1, figsize=(4.2 * (len(LEVELS) + 1), 3.6), sharey=False)
    for solver in SOLVERS:
        pts = [(int(key.split("/")[1]), [f for _, f in v["cells"]["0.0"]]) for key, v in rows.items()
               if key.startswith(f"{solver}/") and key.endswith("/constant")]
        if pts:
            axes[0].errorbar([n for n, _ in pts], [np.mean(f) for _, f in pts], yerr=[np.std(f, ddof=1) for _, f in pts],
                             fmt="-o", capsize=2, label=LABELS.get(solver, solver))
    axes[0].set_title("FD without guidance (γ = 0)")
    axes[0].set_xlabel("network evaluations (steps)")
    axes[0].set_ylabel("FD (mnist16-oracle features)")
    axes[0].legend(fontsize=7)
    for ax, (i, level) in zip(axes[1:], enumerate(LEVELS)):
        for solver in SOLVERS:
            for scaler, style in (("constant", "-o"), ("entropy", "--s")):
                pts = [(n, m[i]) for s, n, sc, m in points if s == solver and sc == scaler and m[i].n]
                if pts:
                    ax.errorbar([n for n, _ in pts], [m.mean for _, m in pts], yerr=[m.std for _, m in pts],
                                fmt=style, capsize=2,
                                label=f"{LABELS.get(solver, solver)} {'EDS' if scaler == 'entropy' else 'constant'}")
        ax.set_title(f"FD at oracle accuracy {level:g}")
        ax.set_xlabel("network evaluations (steps)")
        ax.set_ylabel("FD (mnist16-oracle features)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", default="10,15,25")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/solvers"))
    p.add_argument("--summarise-only", action="store_true")
    args = p.parse_args()
    args.steps = [int(s) for s in args.steps.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summarise_only:
        run(args)
    table, data = summarise_runs(args.out, args.steps)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "summary.json").write_text(json.dumps({k: v for k, v in data.items() if k != "points"}, indent=1) + "\n")
    plot(data["points"], data["rows"], args.out / "fd_vs_nfe.png")
    print(table)


if __name__ == "__main__":
    main()
