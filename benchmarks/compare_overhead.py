"""What ``guidekit compare`` adds to the sampling itself, per cell.

A small random ADM UNet (16×16, about 1M parameters) and classifier, a random SmallCNN judge and a
random reference. One guided cell of ``--num-samples`` at ddim25 is timed two ways: plain
``gk.sample`` with guidance (what any comparison must pay), and the runner's ``compute`` (the same
sampling plus the trace, judge features, and then FD, KID, precision/recall from the stored features).
Prints both and their ratio.

    python benchmarks/compare_overhead.py --num-samples 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import guidekit as gk

UNET = ("--image_size 16 --num_channels 32 --num_res_blocks 2 --attention_resolutions 4 --channel_mult 1,2,2 "
        "--learn_sigma True --diffusion_steps 1000 --noise_schedule linear")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-samples", type=int, default=200)
    ap.add_argument("--respacing", default="ddim25")
    args = ap.parse_args()

    from guidekit_adm.encoder import EncoderUNetModel
    from guidekit_adm.factory import create_model

    from guidekit.comparison import runner
    from guidekit.comparison.grid import Cell
    from guidekit.comparison.reference import SpaceStats
    from guidekit.extractors.small import SmallCNN
    from guidekit.metrics.precision_recall import manifold_radii

    torch.manual_seed(0)
    unet = create_model(UNET).eval()
    clf = EncoderUNetModel(image_size=16, in_channels=3, model_channels=32, out_channels=10, num_res_blocks=1,
                           attention_resolutions=(), channel_mult=(1, 2, 2), pool="adaptive").eval()
    for net in (unet, clf):  # ADM zero-initialises output layers
        with torch.no_grad():
            for p in net.parameters():
                if not p.any():
                    p.normal_(0.0, 0.05)
    judge = SmallCNN(in_channels=3, input_size=16, num_classes=10, width=16, spatial_channels=4)
    params = sum(p.numel() for p in unet.parameters())
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing=args.respacing)
    sampler = gk.create("sampler", "ddim")
    ref_pool = np.random.default_rng(0).normal(size=(2000, 32)).astype(np.float32)
    ref = SpaceStats(ref_pool.mean(0), np.cov(ref_pool, rowvar=False), ref_pool, manifold_radii(ref_pool, 3).numpy())
    n = args.num_samples
    y = torch.arange(n) % 10

    t0 = time.perf_counter()
    gk.sample(unet, diff, (n, 3, 16, 16), sampler=sampler, guidance=gk.ClassifierGuidance(clf, "constant", gamma=2.0),
              y=y, seed=0, progress=False)
    plain = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        ctx = runner.Context(out=Path(tmp), manifest={}, model=unet, diffusion=diff, sampler=sampler,
                             classifiers={"clf": clf}, classifier_ids={}, judge=judge, spaces={"oracle": judge},
                             shape=(3, 16, 16), num_classes=10, num_samples=n, batch_size=500,
                             device=torch.device("cpu"), reference={"oracle": ref})
        t0 = time.perf_counter()
        _, feats = runner.compute(ctx, Cell("clf", "constant", {"gamma": 2.0}, 0), 0)
        runner.measure(ctx, feats)
        cell = time.perf_counter() - t0
    print(f"UNet {params / 1e6:.2f}M parameters, {n} samples, {args.respacing}, torch threads {torch.get_num_threads()}")
    print(f"{'gk.sample (guided)':<28}{plain:8.2f} s")
    print(f"{'compare cell (all metrics)':<28}{cell:8.2f} s")
    print(f"{'ratio cell / sampling':<28}{cell / plain:8.3f}")


if __name__ == "__main__":
    main()
