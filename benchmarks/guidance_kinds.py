"""Cost of each guidance kind over a whole sampling loop, side by side, as ratios to conditional sampling.

Classifier-free guidance needs two model evaluations per step: one forward of 2B ("batched", the
default) or two of B. With an interval, steps outside it run the conditional forward only.
x̂0-classifier guidance backpropagates through the diffusion model.

    python benchmarks/guidance_kinds.py                     # tiny class-conditional ADM UNet on CPU
    python benchmarks/guidance_kinds.py --device cuda --batch 64
"""

from __future__ import annotations

import argparse
from pathlib import Path

import guidekit_adm as adm
import torch
from side_by_side import TINY, time_interleaved, write_ratio_table

import guidekit as gk

K = 10  # real classes; label K is the null label


def guidances(clf: torch.nn.Module) -> dict[str, object]:
    cfg = "classifier-free"
    return {
        "conditional": None,
        "cfg batched (2B)": gk.create("guidance", cfg, gamma=3.0),
        "cfg two forwards": gk.create("guidance", cfg, gamma=3.0, batched=False),
        "cfg interval 200-600": gk.create("guidance", cfg, scaler="interval", gamma=3.0, start=200, end=600),
        "cfg-rescale": gk.create("guidance", "cfg-rescale", gamma=3.0),
        "apg": gk.create("guidance", "apg", gamma=3.0, norm_threshold=5.0, momentum=-0.5),
        "x0-classifier": gk.create("guidance", "x0-classifier", classifier=clf, timestep=0, gamma=1.0),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--respacing", default="ddim25")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="markdown result file (default: benchmarks/results/guidance_kinds_<device>.md)")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    unet = adm.UNetModel(out_channels=6, num_classes=K + 1, **TINY).to(device).eval()
    unet.card = {"null_label": K}
    clf = adm.EncoderUNetModel(out_channels=K, pool="attention", **TINY).to(device).eval()
    diff = gk.GaussianDiffusion.create(steps=1000, learn_sigma=True, respacing=args.respacing)
    y = torch.arange(args.batch, device=device) % K
    runs = {name: (lambda rep, g=guidance: gk.sample(unet, diff, (args.batch, 3, 8, 8), guidance=g, y=y, seed=rep,
                                                       progress=False, device=device))
            for name, guidance in guidances(clf).items()}
    times = time_interleaved(runs, args.repeats, device)
    out = Path(args.out or Path(__file__).parent / "results" / f"guidance_kinds_{device.type}.md")
    write_ratio_table(out, f"Guidance kinds: tiny UNet, batch {args.batch}, {args.respacing}", "guidance", times,
                      "conditional", device, digits=2)


if __name__ == "__main__":
    main()
