"""Cost of each guidance scaler over a whole sampling loop, measured side by side in one run.

EDS reads the logits of the classifier call that produced the gradient, so it should cost the
same as constant guidance (ratio ≈ 1); unguided sampling shows what the classifier itself costs.

    python benchmarks/guidance_overhead.py                 # tiny ADM nets on CPU
    python benchmarks/guidance_overhead.py --arch 64x64 --device cuda --batch 16
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import guidekit_adm as adm
import torch
from side_by_side import TINY, time_interleaved, write_ratio_table

import guidekit as gk

SCALERS = {"unguided": None, "constant": {}, "entropy": {}, "gradnorm": {}, "interval": {}, "timestep": {}}


def networks(arch: str, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module, int]:
    torch.manual_seed(0)
    if arch == "tiny":
        unet = adm.UNetModel(out_channels=6, num_classes=None, **TINY)
        clf = adm.EncoderUNetModel(out_channels=10, pool="attention", **TINY)
        size = 8
    else:
        unet = adm.create_model(f"{arch}_diffusion", device=device)
        clf = adm.create_model(f"{arch}_classifier", device=device)
        size = int(arch.split("x")[0])
    return unet.to(device).eval(), clf.to(device).eval(), size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="tiny", choices=["tiny", "64x64", "256x256"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--respacing", default="ddim25")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="markdown result file (default: benchmarks/results/guidance_overhead_<arch>_<device>.md)")
    args = p.parse_args()
    device = torch.device(args.device)
    unet, clf, size = networks(args.arch, device)
    diff = gk.GaussianDiffusion.create(steps=1000, learn_sigma=True, respacing=args.respacing)
    y = torch.arange(args.batch, device=device) % 10
    class_cond = getattr(unet, "num_classes", None) is not None

    def run(name: str, params: dict | None) -> Callable[[int], object]:
        guidance = None if params is None else gk.ClassifierGuidance(clf, name, **params)
        return lambda rep: gk.sample(unet, diff, (args.batch, 3, size, size), guidance=guidance, y=y, seed=rep,
                                     progress=False, class_cond=class_cond, device=device)

    times = time_interleaved({name: run(name, params) for name, params in SCALERS.items()}, args.repeats, device)
    out = Path(args.out or Path(__file__).parent / "results" / f"guidance_overhead_{args.arch}_{device.type}.md")
    write_ratio_table(out, f"Guidance overhead: {args.arch}, batch {args.batch}, {args.respacing}", "scaler", times,
                      "constant", device)


if __name__ == "__main__":
    main()
