"""One-shot accelerator check: golden parity on the GPU, CPU/GPU and batch-size reproducibility of
guidekit.sample, and the guidance-overhead benchmark on ADM architectures. Writes JSON to --out."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from guidekit_adm.encoder import EncoderUNetModel
from guidekit_adm.unet import UNetModel

import guidekit as gk
from guidekit.testing import load_golden


def tiny_nets(device):
    u, e = load_golden("unet_tiny.pt"), load_golden("encoder_tiny.pt")
    unet = UNetModel(**u["variants"]["legacy"]).eval()
    unet.load_state_dict(u["state_dict"])
    enc = EncoderUNetModel(**e["config"]).eval()
    enc.load_state_dict({k: u["state_dict"][k] for k in e["state_dict_shared_keys"]} | e["state_dict_own"])
    return unet.float().to(device), enc.float().to(device)


def golden_parity(device) -> dict:
    unet, clf = tiny_nets(device)
    g = load_golden("guided_step_tiny.pt")
    res = {}
    for prefix, resp, name in [("250/ddpm", "250", "ddpm"), ("ddim25/ddim", "ddim25", "ddim")]:
        diff = gk.GaussianDiffusion.create(respacing=resp)
        t_idx = g[f"{prefix}/t_index"].to(device)
        t = diff.original_timestep(t_idx)
        x, y, z = g["x_t"].to(device), g["y"].to(device), g["noise"].to(device)
        with torch.no_grad():
            out = unet(x, t, y=y)
        gamma = float(g[f"{prefix}/classifier_scale"])
        step = gk.create("sampler", name).step
        plain = gk.ClassifierGuidance(clf, "constant", gamma=gamma)(x, t, y)
        eds = gk.ClassifierGuidance(clf, "entropy", gamma=gamma, normalizer="ed-dpm")(x, t, y)
        s1 = step(diff, out, x, t_idx, guidance_grad=plain.grad, noise=z).sample.cpu()
        s2 = step(diff, out, x, t_idx, guidance_grad=eds.grad, noise=z).sample.cpu()
        res[prefix] = {
            "model_output": (out.cpu() - g[f"{prefix}/model_output"]).abs().max().item(),
            "grad": (plain.state.grad.cpu() - g[f"{prefix}/classifier_grad_unscaled"]).abs().max().item(),
            "gd_sample_guided": (s1 - g[f"{prefix}/gd_sample_guided"]).abs().max().item(),
            "ed_eds_sample": (s2 - g[f"{prefix}/ed_eds_sample"]).abs().max().item(),
        }
    return res


def reproducibility(device) -> dict:
    def run(dev, batch, offset):
        unet, clf = tiny_nets(dev)
        diff = gk.GaussianDiffusion.create(respacing="ddim10")
        y = (torch.arange(offset, offset + batch) % 10).to(dev)
        g = gk.ClassifierGuidance(clf, "entropy", gamma=2.0)
        return gk.sample(unet, diff, (batch, 3, 8, 8), guidance=g, y=y, seed=3, sample_offset=offset,
                         progress=False, device=dev).cpu()

    cpu = run("cpu", 6, 0)
    gpu = run(device, 6, 0)
    gpu_tail = run(device, 2, 4)
    return {"cpu_vs_gpu_max_abs": (cpu - gpu).abs().max().item(),
            "gpu_batch6_vs_batch2_offset4_max_abs": (gpu[4:] - gpu_tail).abs().max().item()}


def extractor_parity(device) -> dict:
    """The TF-exact resize on the GPU against TensorFlow's stored outputs, and what TF32 does to Inception features."""
    import hashlib

    import numpy as np

    from guidekit.extractors.inception import resize_bilinear_tf1
    from guidekit.testing import random_inception

    fixture = Path(__file__).resolve().parents[1] / "tests" / "metrics" / "data" / "tf_resize_bilinear.npz"
    data = dict(np.load(fixture))
    cases = sorted({k.split("/")[0] for k in data if "/" in k})
    exact = 0
    for case in cases:
        x = torch.from_numpy(data[f"{case}/input"]).to(device).permute(0, 3, 1, 2).float()
        out = resize_bilinear_tf1(x, tuple(data[f"{case}/size"].tolist())).permute(0, 2, 3, 1).cpu().numpy()
        digest = hashlib.sha256(np.ascontiguousarray(out + np.float32(0.0)).tobytes()).hexdigest()
        exact += digest == str(data[f"{case}/sha256"])
    model = random_inception(seed=0)
    images = torch.from_numpy(data["u8_64_to_299/input"])
    cpu = model.extract(images)["pool"]
    model.to(device)
    gpu = model.extract(images)["pool"].cpu()
    switches = [(torch.backends.cuda.matmul, "fp32_precision"), (torch.backends.cudnn.conv, "fp32_precision")]
    saved = [getattr(o, n) for o, n in switches]
    for o, n in switches:
        setattr(o, n, "tf32")
    with torch.no_grad():
        tf32 = model(model.preprocess(images))["pool"].cpu()
    for (o, n), v in zip(switches, saved):
        setattr(o, n, v)

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()

    return {"tf_resize_cases_bit_exact": f"{exact}/{len(cases)}",
            "inception_pool_rel_gpu_no_tf32_vs_cpu": rel(gpu, cpu),
            "inception_pool_rel_gpu_tf32_vs_cpu": rel(tf32, cpu)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="gpu_check.json")
    args = p.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    report = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__}
    start = time.perf_counter()
    report["golden_parity_tf32_off"] = golden_parity(device)
    report["reproducibility"] = reproducibility(device)
    report["extractor_parity"] = extractor_parity(device)
    report["check_seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(report, indent=1), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    bench = Path(__file__).parent / "guidance_overhead.py"
    for arch, batch in (("64x64", 16), ("256x256", 8)):
        out = Path(args.out).with_name(f"guidance_overhead_{arch}_cuda.md")
        subprocess.run([sys.executable, str(bench), "--arch", arch, "--batch", str(batch), "--device", "cuda",
                        "--repeats", "2", "--out", str(out)], check=True)


if __name__ == "__main__":
    main()
