"""Where APG's momentum β makes sampling diverge: the measurement behind APG's parameter bound.

APG (Sadat et al. 2025) averages Δ = x̂0_c − x̂0_u over steps, Δ ← Δ + β·Δ_prev. With |β| ≥ 1 the running
sum is not bounded (a constant Δ grows as Σβ^k). This samples the bundled class-conditional mnist16 UNet
with APG at several β (no norm cap, η = 0 as the paper), without clipping x̂0, and reports the largest
|x̂0| and |x_0| seen, the fraction of saturated pixels of the clipped image and the oracle's accuracy.

    python benchmarks/apg_momentum.py --samples 32 --respacing ddim25 --gamma 4 \
        --out benchmarks/results/apg_momentum/momentum_w4.md
    python benchmarks/apg_momentum.py --samples 32 --respacing ddim25 --gamma 8 \
        --momenta=-0.99,-0.95,-0.9,-0.5,0,0.5,0.6,0.75 --out benchmarks/results/apg_momentum/momentum_w8.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

import guidekit as gk
from guidekit.guidance.apg import AdaptiveProjectedGuidance

MOMENTA = (-1.5, -1.0, -0.99, -0.9, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0, 1.5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--respacing", default="ddim25")
    p.add_argument("--gamma", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--momenta", default=",".join(f"{m:g}" for m in MOMENTA), help="comma-separated β values")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    unet = gk.create("network", "mnist16-unet-cond")
    oracle = gk.create("extractor", "mnist16-oracle")
    diffusion = gk.GaussianDiffusion.from_model(unet, respacing=args.respacing)
    y = torch.arange(args.samples) % 10
    rows = ["| momentum β | max abs x̂0 | max abs x_0 | saturated pixels | oracle accuracy |", "|---|---|---|---|---|"]
    for beta in [float(m) for m in args.momenta.split(",")]:
        guidance = AdaptiveProjectedGuidance("constant", gamma=args.gamma, eta=0.0, momentum=beta, unsafe=True)
        seen = {"x0": 0.0}

        def track(info, seen=seen):
            seen["x0"] = max(seen["x0"], float(info.pred_xstart.abs().max()))

        x = gk.sample(unet, diffusion, (args.samples, 1, 16, 16), guidance=guidance, y=y, seed=args.seed,
                      clip_denoised=False, callback=track, progress=False, check_finite=False)
        finite = bool(torch.isfinite(x).all())
        images = x.clamp(-1, 1)
        with torch.no_grad():
            acc = float((oracle.extract(gk.io.to_uint8(images))["logits"].argmax(1) == y).double().mean()) if finite else math.nan
        saturated = float((x.abs() >= 1).double().mean())
        row = f"| {beta:g} | {seen['x0']:.3g} | {float(x.abs().max()):.3g} | {saturated:.3f} | {acc:.3f} |"
        print(row, flush=True)
        rows.append(row)
    text = (f"APG momentum sweep: mnist16-unet-cond, {args.samples} samples (labels 0-9 cycling), {args.respacing}, "
            f"w = {args.gamma:g}, η = 0, no norm cap, clip_denoised=False, seed {args.seed}.\n\n" + "\n".join(rows) + "\n")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
