"""Whole guided sampling loops side by side in one run: a reference-style loop, guidekit's default path
and guidekit's fast path (``gk.sample(..., fast=True)``).

(a) **reference**: the ADM formulation written out here in plain eager PyTorch, as guided-diffusion's
    ``ddim_sample_loop`` with a ``cond_fn`` runs it: networks converted with ``convert_to_fp16`` (the
    reference's torso-conv policy) on CUDA, coefficient tables read from numpy at every step, the
    gradient from ``autograd.grad`` of log_softmax[y], ED-DPM's entropy scale from the same logits.
(b) **guidekit default**: ``gk.sample`` with the same networks.
(c) **guidekit fast**: ``gk.sample(fast=...)`` with float32 weights under bf16 autocast, channels_last,
    ``torch.compile`` (on CUDA).

For each architecture (64x64: class-conditional UNet + classifier, batch 64; 256x256: unconditional
UNet + classifier, batch 16; random weights from ``guidekit_adm.create_model``), DDIM-25, constant and
entropy (EDS) scalers, it prints images/s and the ratio to (a), the per-step bound (UNet forward +
classifier forward/backward, each at its best measured time, times the steps) and the loop's ratio to
it, the EDS-vs-constant overhead, peak memory and compile time. TF32 is set explicitly (``--tf32``).

    python benchmarks/gpu_sampling.py                     # CUDA: 64x64 and 256x256
    python benchmarks/gpu_sampling.py --device cpu        # CPU mode: mnist16 models, else a small ADM config

Results (with the GPU's name) go to ``benchmarks/results/gpu_sampling_<device>.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import guidekit_adm as adm
import numpy as np
import torch
import torch.nn.functional as F

import guidekit as gk
from guidekit.fast import FastConfig, classifier_call, unet_call

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = {
    "64x64": dict(model="64x64_diffusion", classifier="64x64_classifier", batch=64, gamma=1.0),
    "256x256": dict(model="256x256_diffusion_uncond", classifier="256x256_classifier", batch=16, gamma=10.0),
}
#: the CPU mode's stand-in when the bundled mnist16 networks are not installed
SMALL_UNET = ("--image_size 64 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2,2 --attention_resolutions 16,8 "
              "--num_head_channels 32 --learn_sigma True --class_cond True --resblock_updown True "
              "--use_scale_shift_norm True")
SMALL_CLASSIFIER = "--image_size 64 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 8"
SCALERS = ("constant", "entropy")
VARIANTS = ("reference", "default", "fast")


class Nets:
    """A UNet and its classifier, with what the loops need to know about them."""

    def __init__(self, unet: torch.nn.Module, clf: torch.nn.Module, shape: tuple[int, ...], name: str,
                 device: torch.device) -> None:
        self.unet, self.clf, self.shape, self.name = unet.to(device).eval(), clf.to(device).eval(), shape, name
        self.class_cond = getattr(unet, "num_classes", None) is not None
        with torch.no_grad():
            x = torch.zeros(1, *shape[1:], device=device)
            t = torch.zeros(1, dtype=torch.int64, device=device)
            y = torch.zeros(1, dtype=torch.int64, device=device)
            out = self.unet(x, t, y=y) if self.class_cond else self.unet(x, t)
            self.num_classes = int(self.clf(x, t).shape[1])
        self.learn_sigma = out.shape[1] == 2 * shape[1]

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for m in (self.unet, self.clf)
                   for p in [*m.parameters(), *m.buffers()])


def _random(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights N(0, 0.02²), drawn in float32 on the model's device (the same for fp16 and fp32 copies)."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, device=device) * 0.02)
    return model


def release_nets(arch: str, device: torch.device, fp16: bool) -> Nets:
    spec = ARCHS[arch]
    unet = _random(adm.create_model(spec["model"], device=device, use_fp16=fp16), 0)  # the reference's fp16 policy
    clf = _random(adm.create_model(spec["classifier"], device=device, use_fp16=fp16), 1)
    size = int(arch.split("x")[0])
    return Nets(unet, clf, (spec["batch"], 3, size, size), arch, device)


def cpu_nets(batch: int, device: torch.device) -> Nets:
    """The bundled mnist16 UNet and CE classifier when installed, else a small random-weight ADM pair."""
    have = set(gk.available("network"))
    if {"mnist16-unet", "mnist16-classifier-ce"} <= have:
        return Nets(gk.create("network", "mnist16-unet"), gk.create("network", "mnist16-classifier-ce"),
                    (batch, 1, 16, 16), "mnist16", device)
    torch.manual_seed(0)
    unet, clf = _random(adm.create_model(SMALL_UNET), 0), _random(adm.create_model(SMALL_CLASSIFIER), 1)
    return Nets(unet, clf, (batch, 3, 64, 64), "small ADM 64x64 (mnist16 models not installed)", device)


# --------------------------------------------------------------------------------------------
# (a) the reference formulation, written out as guided-diffusion runs it
# --------------------------------------------------------------------------------------------
def _extract(arr: np.ndarray, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """ADM's _extract_into_tensor: numpy table → device tensor at every call."""
    res = torch.from_numpy(arr).to(device=t.device)[t].float()
    return res.reshape(res.shape + (1,) * (len(shape) - 1)).expand(shape)


def reference_loop(nets: Nets, diffusion: gk.GaussianDiffusion, scaler: str, gamma: float,
                   y: torch.Tensor) -> torch.Tensor:
    """ddim_sample_loop (eta 0) with cond_fn, as in guided-diffusion / ED-DPM's classifier_sample.py."""
    tables = {k: getattr(diffusion, k).numpy() for k in ("alphas_cumprod", "alphas_cumprod_prev",
                                                           "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
                                                           "posterior_log_variance_clipped", "log_betas")}
    timestep_map = diffusion.timestep_map.numpy()
    device = y.device
    x = torch.randn(*nets.shape, device=device)
    channels = nets.shape[1]
    for i in reversed(range(diffusion.num_steps)):
        t = torch.tensor([i] * nets.shape[0], device=device)
        ts = torch.from_numpy(timestep_map).to(device)[t]  # _WrappedModel
        with torch.no_grad():
            out = nets.unet(x, ts, y=y) if nets.class_cond else nets.unet(x, ts)
            eps = out
            if nets.learn_sigma:
                eps, v = torch.split(out, channels, dim=1)
                min_log = _extract(tables["posterior_log_variance_clipped"], t, x.shape)
                max_log = _extract(tables["log_betas"], t, x.shape)
                frac = (v + 1) / 2
                _ = torch.exp(frac * max_log + (1 - frac) * min_log)  # p_mean_variance computes it
            pred_xstart = (_extract(tables["sqrt_recip_alphas_cumprod"], t, x.shape) * x
                           - _extract(tables["sqrt_recipm1_alphas_cumprod"], t, x.shape) * eps).clamp(-1, 1)
        with torch.enable_grad():  # cond_fn
            x_in = x.detach().requires_grad_(True)
            logits = nets.clf(x_in, ts)
            log_probs = F.log_softmax(logits, dim=-1)
            selected = log_probs[range(len(logits)), y.view(-1)]
            grad = torch.autograd.grad(selected.sum(), x_in)[0]
        with torch.no_grad():
            if scaler == "entropy":  # ED-DPM: s = γ / (H / log 1000), from the same logits
                probs = F.softmax(logits.float(), dim=-1)
                entropy = -(probs * torch.log(probs)).sum(-1)
                scale = (gamma / (entropy / math.log(1000))).view(-1, *([1] * (x.ndim - 1)))
            else:
                scale = gamma
            alpha_bar = _extract(tables["alphas_cumprod"], t, x.shape)
            eps0 = (_extract(tables["sqrt_recip_alphas_cumprod"], t, x.shape) * x - pred_xstart) / _extract(
                tables["sqrt_recipm1_alphas_cumprod"], t, x.shape)
            eps0 = eps0 - (1 - alpha_bar).sqrt() * grad * scale
            pred_xstart = (_extract(tables["sqrt_recip_alphas_cumprod"], t, x.shape) * x
                           - _extract(tables["sqrt_recipm1_alphas_cumprod"], t, x.shape) * eps0)
            eps = (_extract(tables["sqrt_recip_alphas_cumprod"], t, x.shape) * x - pred_xstart) / _extract(
                tables["sqrt_recipm1_alphas_cumprod"], t, x.shape)
            alpha_bar_prev = _extract(tables["alphas_cumprod_prev"], t, x.shape)
            noise = torch.randn_like(x)  # drawn even with eta = 0
            mean_pred = pred_xstart * alpha_bar_prev.sqrt() + (1 - alpha_bar_prev).sqrt() * eps
            nonzero = (t != 0).float().view(-1, *([1] * (x.ndim - 1)))
            x = mean_pred + nonzero * 0.0 * noise
    return x


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: wall-clock time, or (``--clock cpu``, the CPU default) this process's CPU time: on a shared machine
#: with one thread per process, CPU time measures the work done rather than the waiting
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = clock()
    fn()
    _sync(device)
    return clock() - start


def best_of(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    fn()
    return min(timed(fn, device) for _ in range(repeats))


def per_step_bound(variant: str, nets: Nets, fast: FastConfig, diffusion: gk.GaussianDiffusion,
                   y: torch.Tensor, repeats: int) -> dict[str, float]:
    """Best measured UNet forward and classifier forward+backward at a middle step, as this variant calls them."""
    device = y.device
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(*nets.shape, generator=gen, device=device)
    t = diffusion.original_timestep(torch.full((nets.shape[0],), diffusion.num_steps // 2, dtype=torch.int64)).to(device)
    if variant == "fast":
        unet, guide = unet_call(nets.unet, nets.class_cond, fast, device), classifier_call(nets.clf, fast, device)
        if fast.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)

        def forward() -> Any:
            with torch.no_grad():
                return unet(x, t, y)

        def gradient() -> Any:
            return guide(x, t, y)
    else:
        def forward() -> Any:
            with torch.no_grad():
                return nets.unet(x, t, y=y) if nets.class_cond else nets.unet(x, t)

        if variant == "default":
            guidance = gk.ClassifierGuidance(nets.clf, "constant", gamma=1.0)

            def gradient() -> Any:
                return guidance(x, t, y, t_index=diffusion.num_steps // 2, num_steps=diffusion.num_steps).grad
        else:
            def gradient() -> Any:
                with torch.enable_grad():
                    x_in = x.detach().requires_grad_(True)
                    lp = F.log_softmax(nets.clf(x_in, t), dim=-1)[range(len(y)), y]
                    return torch.autograd.grad(lp.sum(), x_in)[0]
    unet_s, clf_s = best_of(forward, device, repeats), best_of(gradient, device, repeats)
    return {"unet_forward_s": unet_s, "classifier_fwd_bwd_s": clf_s,
            "bound_s": diffusion.num_steps * (unet_s + clf_s)}


def loop_fn(variant: str, nets: Nets, fast: FastConfig, diffusion: gk.GaussianDiffusion, scaler: str,
            gamma: float, y: torch.Tensor) -> Callable[[], torch.Tensor]:
    if variant == "reference":
        return lambda: reference_loop(nets, diffusion, scaler, gamma, y)
    params = {"normalizer": "ed-dpm"} if scaler == "entropy" else {}
    guidance = gk.ClassifierGuidance(nets.clf, scaler, gamma=gamma, **params)
    return lambda: gk.sample(nets.unet, diffusion, nets.shape, sampler="ddim", guidance=guidance, y=y, seed=0,
                             progress=False, device=y.device, fast=fast if variant == "fast" else False)


def host_syncs(fn: Callable[[], Any], device: torch.device) -> int | None:
    """CUDA host synchronisations during ``fn`` (torch's sync debug mode), or None off CUDA."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def bench(nets_for: Callable[[str], Nets], label: str, device: torch.device, fast: FastConfig, gamma: float,
          respacing: str, repeats: int) -> dict[str, Any]:
    """Every variant and scaler for one architecture; the timed loops are interleaved round by round, so
    drift (clocks, temperature, other processes) hits them alike."""
    nets = {variant: nets_for(variant) for variant in VARIANTS}
    first = nets[VARIANTS[0]]
    diffusion = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=first.learn_sigma,
                                            respacing=respacing)
    y = torch.randint(0, first.num_classes, (first.shape[0],), generator=torch.Generator().manual_seed(0)).to(device)
    runs = {(v, s): loop_fn(v, nets[v], fast, diffusion, s, gamma, y) for v in VARIANTS for s in SCALERS}
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for key, run in runs.items():
        entries[key] = {"cold_s": timed(run, device), "loop_s": [], "peak_gib": 0.0}  # the fast path compiles here
        print(json.dumps({"arch": label, "warm-up": key, "cold_s": entries[key]["cold_s"]}), flush=True)
    for _ in range(repeats):
        for key, run in runs.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            entries[key]["loop_s"].append(timed(run, device))
            if device.type == "cuda":
                peak = (torch.cuda.max_memory_allocated(device) - base) / 2**30 + nets[key[0]].weight_bytes() / 2**30
                entries[key]["peak_gib"] = max(entries[key]["peak_gib"], peak)
    rows: dict[str, Any] = {"arch": label, "nets": first.name, "variants": {}}
    for variant in VARIANTS:
        row: dict[str, Any] = {"batch": nets[variant].shape[0]}
        for scaler in SCALERS:
            entry = entries[(variant, scaler)]
            entry |= {"best_s": min(entry["loop_s"]), "median_s": statistics.median(entry["loop_s"])}
            if device.type != "cuda":
                entry.pop("peak_gib")
            if variant == "fast" and scaler == SCALERS[0]:
                entry["compile_s"] = entry["cold_s"] - entry["best_s"]
                entry["host_syncs"] = host_syncs(runs[(variant, scaler)], device)
            row[scaler] = entry
            print(json.dumps({"arch": label, "variant": variant, "scaler": scaler,
                              **{k: v for k, v in entry.items() if k != "loop_s"}}), flush=True)
        row["bound"] = per_step_bound(variant, nets[variant], fast, diffusion, y, repeats)
        print(json.dumps({"arch": label, "variant": variant, **row["bound"]}), flush=True)
        rows["variants"][variant] = row
    return rows


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def summarize(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per (variant, scaler) with the derived ratios."""
    out = []
    v = result["variants"]
    for variant, row in v.items():
        for scaler in SCALERS:
            e = row[scaler]
            ref = v["reference"][scaler]["best_s"]
            out.append({
                "arch": result["arch"], "variant": variant, "scaler": scaler, "batch": row["batch"],
                "images_per_s": row["batch"] / e["best_s"], "vs_reference": ref / e["best_s"],
                "loop_s": e["best_s"], "loop_median_s": e["median_s"], "bound_s": row["bound"]["bound_s"],
                "loop_over_bound": e["best_s"] / row["bound"]["bound_s"],
                "eds_overhead": row["entropy"]["best_s"] / row["constant"]["best_s"] - 1 if scaler == "entropy" else None,
                "peak_gib": e.get("peak_gib"), "compile_s": e.get("compile_s"), "host_syncs": e.get("host_syncs"),
            })
    return out


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def to_markdown(env: dict[str, Any], results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"# Guided sampling loops, {env['device_name']} ({env['device']})", "",
             f"`python benchmarks/gpu_sampling.py {' '.join(args.argv)}` — random weights, {args.respacing}, "
             f"fast path {env['fast']}; best of {args.repeats} interleaved loops after one warm-up loop each, {args.clock} clock; TF32 "
             f"{'on' if env.get('tf32') else 'off'}. reference = ADM formulation in eager PyTorch "
             f"({'convert_to_fp16 networks' if env['device'] == 'cuda' else 'float32'}); default = gk.sample with the "
             "same networks; fast = gk.sample(fast=...) on float32 weights. bound = steps × (best UNet forward + best "
             "classifier forward/backward) as that variant calls them.", "",
             "| arch | variant | scaler | batch | images/s | × reference | loop (s) | bound (s) | loop / bound | "
             "EDS overhead | peak memory (GiB) | compile (s) | host syncs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        for r in summarize(result):
            lines.append(
                f"| {r['arch']} | {r['variant']} | {r['scaler']} | {r['batch']} | {r['images_per_s']:.2f} | "
                f"{r['vs_reference']:.2f} | {r['loop_s']:.3f} | {r['bound_s']:.3f} | {r['loop_over_bound']:.3f} | "
                f"{_fmt(None if r['eds_overhead'] is None else 100 * r['eds_overhead'], '+.1f')}"
                f"{'%' if r['eds_overhead'] is not None else ''} | {_fmt(r['peak_gib'], '.2f')} | "
                f"{_fmt(r['compile_s'], '.1f')} | {_fmt(r['host_syncs'], 'd')} |")
    lines += ["", "Targets (issue 9): fast ≥ 2.0× reference on both architectures; EDS overhead ≤ 1%; loop ≤ 1.05× "
              "its bound; peak memory ≤ the reference's. On CPU: loop ≤ 1.05× its network calls, EDS ≤ 1%.", "",
              "Environment and raw timings:", "", "```json",
              json.dumps({"environment": env, "results": results}, indent=1, default=float), "```", ""]
    return "\n".join(lines)


def environment(device: torch.device, fast: FastConfig) -> dict[str, Any]:
    env: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "device": device.type,
                           "threads": torch.get_num_threads(), "fast": repr(fast)}
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["tf32"] = torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--archs", default="64x64,256x256", help="CUDA: comma-separated among 64x64, 256x256")
    parser.add_argument("--batch", type=int, help="override the batch size (CPU default 4)")
    parser.add_argument("--respacing", default="ddim25")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fast-dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. reduce-overhead (CUDA graphs)")
    parser.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--clock", choices=tuple(CLOCKS), help="wall (CUDA default) or cpu (process CPU time, "
                        "the CPU default; run with OMP_NUM_THREADS=1)")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/gpu_sampling_<device name>.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    device = torch.device(args.device)
    global clock
    args.clock = args.clock or ("wall" if device.type == "cuda" else "cpu")
    clock = CLOCKS[args.clock]
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    fast = FastConfig(dtype=args.fast_dtype, compile_mode=args.compile_mode)
    env = environment(device, fast)
    slug = re.sub(r"[^a-z0-9]+", "-", env["device_name"].lower()).strip("-") if device.type == "cuda" else "cpu"
    out = args.out or RESULTS / f"gpu_sampling_{slug}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []

    def save(result: dict[str, Any]) -> None:  # after each architecture: a run cut short keeps what it measured
        results.append(result)
        out.write_text(to_markdown(env, results, args))
        print(f"wrote {out}", flush=True)

    if device.type == "cuda":
        for arch in args.archs.split(","):
            cache: dict[bool, Nets] = {}

            def nets_for(variant: str, arch: str = arch, cache: dict[bool, Nets] = cache) -> Nets:
                fp16 = variant != "fast"  # (a) and (b) share the reference's fp16 networks
                if fp16 not in cache:
                    cache[fp16] = release_nets(arch, device, fp16)
                    if args.batch:
                        cache[fp16].shape = (args.batch, *cache[fp16].shape[1:])
                return cache[fp16]

            save(bench(nets_for, arch, device, fast, ARCHS[arch]["gamma"], args.respacing, args.repeats))
            cache.clear()
            torch.cuda.empty_cache()
    else:
        nets = cpu_nets(args.batch or 4, device)
        save(bench(lambda variant: nets, f"cpu: {nets.name}", device, fast, 1.0, args.respacing, args.repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
