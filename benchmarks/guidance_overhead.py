"""Cost of each guidance scaler over a whole sampling loop, measured side by side in one run.

EDS reads the logits of the classifier call that produced the gradient, so it should cost the
same as constant guidance (ratio ≈ 1); unguided sampling shows what the classifier itself costs.

    python benchmarks/guidance_overhead.py                 # tiny ADM nets on CPU
    python benchmarks/guidance_overhead.py --arch 64x64 --device cuda --batch 16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import guidekit_adm as adm
import torch

import guidekit as gk

TINY = dict(image_size=8, in_channels=3, model_channels=32, num_res_blocks=1, attention_resolutions=[2],
            channel_mult=[1, 1], num_head_channels=8, use_scale_shift_norm=True, resblock_updown=True)
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
    times: dict[str, list[float]] = {k: [] for k in SCALERS}
    for rep in range(args.repeats + 1):  # the first round warms up
        for name, params in SCALERS.items():  # interleaved, so drift hits every scaler alike
            guidance = None if params is None else gk.ClassifierGuidance(clf, name, **params)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            gk.sample(unet, diff, (args.batch, 3, size, size), guidance=guidance, y=y, seed=rep, progress=False,
                      class_cond=getattr(unet, "num_classes", None) is not None, device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if rep:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["constant"])
    rows = [(name, statistics.median(v), statistics.median(v) / base) for name, v in times.items()]
    env = {"torch": torch.__version__, "device": torch.cuda.get_device_name(device) if device.type == "cuda"
           else f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"}
    lines = [f"# Guidance overhead: {args.arch}, batch {args.batch}, {args.respacing}, {env['device']}, torch {env['torch']}",
             "", "| scaler | median loop time (s) | ratio to constant |", "|---|---|---|"]
    lines += [f"| {n} | {t:.3f} | {r:.3f} |" for n, t, r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out or Path(__file__).parent / "results" / f"guidance_overhead_{args.arch}_{device.type}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n```json\n" + json.dumps({"env": env, "seconds": times}, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
