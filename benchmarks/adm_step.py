"""Time one classifier-guided DDIM step of the ADM networks (random weights).

For each image size the released diffusion UNet and its classifier are built with random weights
(``guidekit_adm.create_model``) and one ddim25 step at t_index 12 is timed three ways: the UNet
forward pass, the classifier forward + backward (the guidance gradient, through
``guidekit.ClassifierGuidance``), and the whole step (both plus ``sampler.step``). Each is run
``--warmup`` times untimed, then ``--repeats`` times; CUDA is synchronised around every timing.

    python benchmarks/adm_step.py --device auto --sizes 64 --batch-sizes 1
    python benchmarks/adm_step.py --device cuda --sizes 64,256 --batch-sizes 1,8 --precisions fp32,fp16

Results go to ``benchmarks/results/adm_step_<device>.md`` (a table plus the raw JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import guidekit_adm as adm
import torch

import guidekit as gk

PAIRS = {
    64: ("64x64_diffusion", "64x64_classifier"),
    128: ("128x128_diffusion", "128x128_classifier"),
    256: ("256x256_diffusion", "256x256_classifier"),
    512: ("512x512_diffusion", "512x512_classifier"),
}
RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def bench(size: int, batch: int, precision: str, device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
    """Build the pair for ``size`` and time the UNet, the guidance gradient and the whole step."""
    model_name, classifier_name = PAIRS[size]
    fp16 = precision == "fp16"
    torch.manual_seed(0)
    built = time.perf_counter()
    model = adm.create_model(model_name, device=device, use_fp16=fp16).eval()
    classifier = adm.create_model(classifier_name, device=device, use_fp16=fp16).eval()
    built = time.perf_counter() - built
    release = adm.release(model_name)
    diffusion = gk.GaussianDiffusion.create(
        steps=release.diffusion.steps, schedule=release.diffusion.schedule, learn_sigma=True, respacing="ddim25"
    )
    sampler = gk.create("sampler", "ddim")
    guidance = gk.ClassifierGuidance(classifier, "constant", gamma=1.0)

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=gen).to(device)
    noise = torch.randn(batch, 3, size, size, generator=gen).to(device)
    y = torch.randint(0, 1000, (batch,), generator=gen).to(device)
    t_index = torch.full((batch,), 12, dtype=torch.int64, device=device)
    t = diffusion.original_timestep(t_index)

    def unet() -> torch.Tensor:
        with torch.no_grad():
            return model(x, t, y=y)

    def gradient() -> torch.Tensor:
        return guidance(x, t, y, t_index=12, num_steps=diffusion.num_steps).grad

    def step() -> torch.Tensor:
        out = unet()
        grad = gradient()
        with torch.no_grad():
            return sampler.step(diffusion, out.float(), x, t_index, guidance_grad=grad, noise=noise,
                                clip_denoised=True).sample

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings = {name: time_call(fn, device, warmup, repeats) for name, fn in
               (("unet_forward", unet), ("classifier_fwd_bwd", gradient), ("guided_step", step))}
    result: dict[str, Any] = {
        "size": size, "batch": batch, "precision": precision, "model": model_name, "classifier": classifier_name,
        "build_s": round(built, 3),
        "median_ms": {k: round(1e3 * statistics.median(v), 2) for k, v in timings.items()},
        "min_ms": {k: round(1e3 * min(v), 2) for k, v in timings.items()},
        "raw_s": {k: [round(s, 5) for s in v] for k, v in timings.items()},
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def environment(device: torch.device) -> dict[str, Any]:
    env = {
        "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        env["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def to_markdown(env: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"# ADM guided DDIM step, {env.get('gpu', env.get('cpu'))} ({env['device']})",
        "",
        f"`python benchmarks/adm_step.py {' '.join(args.argv)}` — random weights, ddim25 step at t_index 12 "
        f"(t = 480), constant scale; median of {args.repeats} runs after {args.warmup} warm-up runs. "
        "fp16 is the reference `convert_to_fp16` policy (torso convs in half) for both networks.",
        "",
        "| size | batch | precision | UNet forward (ms) | classifier fwd+bwd (ms) | whole step (ms) | "
        "images/s | peak GPU memory (GiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["median_ms"]
        rate = r["batch"] / (m["guided_step"] / 1e3)
        lines.append(
            f"| {r['size']} | {r['batch']} | {r['precision']} | {m['unet_forward']:.1f} | "
            f"{m['classifier_fwd_bwd']:.1f} | {m['guided_step']:.1f} | {rate:.2f} | {r.get('peak_memory_gib', '–')} |"
        )
    lines += ["", "Environment and raw timings:", "", "```json",
              json.dumps({"environment": env, "results": rows}, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--sizes", default="64", help="comma-separated image sizes among 64,128,256,512")
    parser.add_argument("--batch-sizes", default="1")
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, fp16")
    parser.add_argument("--fp16", action="store_true", help="shorthand for --precisions fp16")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/adm_step_<device type>.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    precisions = ["fp16"] if args.fp16 else args.precisions.split(",")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for precision in precisions:
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                row = bench(size, batch, precision, device, args.warmup, args.repeats)
                print(json.dumps({k: row[k] for k in ("size", "batch", "precision", "median_ms", "build_s")}), flush=True)
                rows.append(row)
    out = args.out or RESULTS / f"adm_step_{device.type}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(environment(device), rows, args))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
