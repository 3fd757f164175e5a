"""Is the judge of ``guidekit compare`` trustworthy? FD and KID in every feature space, checked three ways.

For a bundled data set (mnist16, fashion32) the held-out reference (images no model trained on) is
split in two seeded halves A and B; every metric below is measured against half B, with n = |A|
images on the other side, so that the numbers are comparable (FD is biased by n, KID is not).

(a) floor: real held-out images (A) and real training images (n of them) against B, next to the
    model's unguided samples and uniform noise: real images must sit near the floor, far below samples;
    a gap between training and held-out images is what a judge that saw the training images shows.
(b) graded corruptions of A (Gaussian pixel noise, Gaussian blur, blending each image with one of another
    class): every metric must grow monotonically with the corruption.
(c) ranking: a small grid of guidance methods run by ``guidekit compare`` (cached under DATASET/compare):
    the methods' order under each metric, and Kendall's τ between the metrics' orders.

    python benchmarks/judge_sanity.py mnist16            # writes benchmarks/results/judge_sanity/mnist16/
    python benchmarks/judge_sanity.py mnist16 fashion32  # and the README.md of the folder, from every data set there

Rerunning recomputes only the feature extraction (seconds); the compare grid is cached.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

import guidekit as gk
from guidekit.io import to_uint8
from guidekit.metrics import FeatureStats, frechet_distance
from guidekit.metrics.kid import kernel_distance

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "judge_sanity"
SETS = {
    "mnist16": dict(unet="mnist16-unet", classifier="mnist16-classifier-ce", judge="mnist16-oracle",
                    pca="mnist16-pca", shape=(1, 16, 16)),
    "fashion32": dict(unet="fashion32-unet", classifier="fashion32-classifier-ce", judge="fashion32-oracle",
                      pca="fashion32-pca", shape=(1, 32, 32)),
}
GRID = ["constant:0,1,2,4", "entropy:0.5,1,2"]
CORRUPTIONS = {
    "noise": [0.0, 0.05, 0.1, 0.2, 0.4],  # σ of Gaussian pixel noise, pixels in [-1, 1]
    "blur": [0.0, 0.5, 0.75, 1.0, 1.5],  # σ of a Gaussian blur, in pixels (16x16 images: 0.5 already shows)
    "class-mixing": [0.0, 0.1, 0.2, 0.35, 0.5],  # λ of (1-λ)·x + λ·(an image of another class)
}


def training_and_heldout(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training images, held-out images, their labels), float NCHW in [-1, 1]; the data are read here, in a
    benchmark, never by the library at run time."""
    from guidekit.io import load_batch

    card = gk.create("network", SETS[name]["unet"]).card
    held = load_batch(card["reference_batch"])
    held_x = torch.from_numpy(np.array(held.images())).permute(0, 3, 1, 2).float() / 127.5 - 1
    if name == "mnist16":
        from guidekit.data import load_dataset

        train, _ = load_dataset("mnist16").split(500, seed=0)
        train_x = train.images
    else:
        sys.path.insert(0, str(ROOT / "scripts"))
        from train_fashion32 import load_split

        train_x = load_split()[0].images
    return train_x, held_x, torch.from_numpy(held.labels())


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma == 0:
        return x
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def corrupt(kind: str, level: float, x: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return (x + level * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    if kind == "blur":
        return blur(x, level)
    other = torch.empty_like(x)  # for each image, one of another class (seeded)
    for i in range(len(x)):
        pool = torch.nonzero(labels != labels[i]).flatten()
        other[i] = x[pool[torch.randint(len(pool), (1,), generator=g)]]
    return (1 - level) * x + level * other


def metrics(feats: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for space, f in feats.items():
        a, b = FeatureStats().update(f), FeatureStats().update(ref[space])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[f"FD {space}"] = frechet_distance(a.mean, a.cov, b.mean, b.cov)
        out[f"KID {space}"] = kernel_distance(ref[space], f)
    return out


def kendall_tau(a: list[float], b: list[float]) -> float:
    pairs = list(itertools.combinations(range(len(a)), 2))
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return float(s / len(pairs)) if pairs else float("nan")


def run(name: str, out: Path, samples: int, device: str) -> dict:
    spec = SETS[name]
    extract = {"oracle": gk.create("extractor", spec["judge"]), "pca": gk.create("extractor", spec["pca"])}

    def feats_of(x: torch.Tensor) -> dict[str, np.ndarray]:
        u8 = to_uint8(x)  # judged as samples are: quantised to uint8
        return {s: np.concatenate([e.extract(u8[i:i + 500])["pool"].float().numpy() for i in range(0, len(u8), 500)])
                for s, e in extract.items()}

    train_x, held_x, held_y = training_and_heldout(name)
    perm = torch.randperm(len(held_x), generator=torch.Generator().manual_seed(0))
    a_idx, b_idx = perm[: len(perm) // 2], perm[len(perm) // 2:]
    n = len(a_idx)
    ref = feats_of(held_x[b_idx])
    x_a, y_a = held_x[a_idx], held_y[a_idx]
    train_pick = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(1))[:n]
    noise = torch.rand((n, *spec["shape"]), generator=torch.Generator().manual_seed(2)) * 2 - 1
    samples = max(samples, n)  # (a) takes n of the unguided samples

    # (c) first: the compare grid (cached), whose unguided cell also gives (a) its model samples
    from guidekit.comparison import compare

    res = compare(spec["unet"], [spec["classifier"]], GRID, out=out / "compare", seeds=1, num_samples=samples,
                  respacing="ddim25", judge=spec["judge"], device=device, plots=False, batch_size=250)
    unguided = next(r for r in res.records if r.get("shared") == "unguided")
    from guidekit.comparison.runner import load_features

    sample_feats = {s: f[:n] for s, f in load_features(out / "compare" / "cells" / f"{unguided['cell']}.npz").items()}

    floor = {
        "real held-out (A)": metrics(feats_of(x_a), ref),
        "real training images": metrics(feats_of(train_x[train_pick]), ref),
        f"unguided samples ({spec['unet']})": metrics(sample_feats, ref),
        "uniform noise": metrics(feats_of(noise), ref),
    }
    curves = {kind: [metrics(feats_of(corrupt(kind, lv, x_a, y_a)), ref) for lv in levels]
              for kind, levels in CORRUPTIONS.items()}
    keys = list(floor["real held-out (A)"])
    monotone = {kind: {k: bool(all(b > a for a, b in zip([c[k] for c in cs], [c[k] for c in cs][1:]))) for k in keys}
                for kind, cs in curves.items()}
    methods = [f"{r['scaler']} γ={r['params']['gamma']:g}" for r in res.records]
    values = {f"FD {s}": [r["fd"][s] for r in res.records] for s in ("oracle", "pca")}
    values.update({f"KID {s}": [r["kid"][s] for r in res.records] for s in ("oracle", "pca")})
    accuracy = [r["accuracy"] for r in res.records]
    taus = {f"{a} vs {b}": kendall_tau(values[a], values[b]) for a, b in itertools.combinations(values, 2)}
    report = {"dataset": name, "n": n, "reference": "held-out half B", "reference_size": len(b_idx),
              "floor": floor, "corruptions": {k: {"levels": CORRUPTIONS[k], "metrics": v} for k, v in curves.items()},
              "monotone": monotone,
              "ranking": {"samples": samples, "methods": methods, "accuracy": accuracy, "values": values,
                          "kendall_tau": taus}}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, out)
    return report


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(report["floor"]["real held-out (A)"])
    fig, axes = plt.subplots(1, len(report["corruptions"]), figsize=(13, 3.8))
    for ax, (kind, c) in zip(axes, report["corruptions"].items()):
        for k in keys:
            v = np.array([m[k] for m in c["metrics"]])
            ax.plot(c["levels"], v / max(v.max(), 1e-12), marker="o", ms=3, label=k)
        ax.set_title(f"{kind} (each metric / its maximum)", fontsize=9)
        ax.set_xlabel({"noise": "σ (pixels in [-1, 1])", "blur": "σ (pixels)", "class-mixing": "λ"}[kind])
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{report['dataset']}: metrics of corrupted held-out images against the other held-out half "
                 f"(n = {report['n']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "corruptions.png", dpi=110)
    plt.close(fig)
    r = report["ranking"]
    fig, axes = plt.subplots(1, len(r["values"]), figsize=(13, 3.6))
    for ax, (k, v) in zip(axes, r["values"].items()):
        ax.scatter(r["accuracy"], v, s=12)
        for m, a, y in zip(r["methods"], r["accuracy"], v):
            ax.annotate(m, (a, y), fontsize=6)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("oracle accuracy")
    fig.suptitle(f"{report['dataset']}: the compare grid under each metric ({r['samples']} samples per method)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "ranking.png", dpi=110)
    plt.close(fig)


def section(report: dict) -> str:
    name, n = report["dataset"], report["n"]
    keys = list(report["floor"]["real held-out (A)"])
    lines = [f"## {name}", "",
             f"Reference: held-out half B ({report['reference_size']} images); each row: n = {n} images.", "",
             "### (a) Real images against the floor", "", "| images | " + " | ".join(keys) + " |",
             "|---|" + "---|" * len(keys)]
    for row, m in report["floor"].items():
        lines.append(f"| {row} | " + " | ".join(f"{m[k]:.4g}" for k in keys) + " |")
    floor, train = report["floor"]["real held-out (A)"], report["floor"]["real training images"]
    samples = next(v for k, v in report["floor"].items() if k.startswith("unguided"))
    lines += ["", "Training images minus held-out images (what the judge's having seen them adds), and unguided "
              "samples minus held-out images: " + "; ".join(
                  f"{k}: {train[k] - floor[k]:+.4g} and {samples[k] - floor[k]:+.4g}" for k in keys) + "."]
    lines += ["", "### (b) Graded corruptions of held-out half A", ""]
    for kind, c in report["corruptions"].items():
        lines += [f"{kind}, levels {c['levels']}:", "", "| metric | " + " | ".join(f"{lv:g}" for lv in c["levels"])
                  + " | monotone |", "|---|" + "---|" * (len(c["levels"]) + 1)]
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(f"{m[k]:.4g}" for m in c["metrics"]) + " | "
                         + ("yes" if report["monotone"][kind][k] else "**no**") + " |")
        lines.append("")
    bad = [f"{k} under {kind}" for kind, m in report["monotone"].items() for k, ok in m.items() if not ok]
    lines += ["Not monotone: " + (", ".join(bad) if bad else "none") + ".", ""]
    r = report["ranking"]
    lines += ["### (c) Ranking of the compare grid", "",
              f"`guidekit compare` (CE classifier, DDIM-25, seed 0, {r['samples']} samples per method; cached in "
              f"`{name}/compare/`), each metric against the full held-out reference:", "",
              "| method | accuracy | " + " | ".join(r["values"]) + " |", "|---|---|" + "---|" * len(r["values"])]
    for i, m in enumerate(r["methods"]):
        lines.append(f"| {m} | {r['accuracy'][i]:.3f} | " + " | ".join(f"{v[i]:.4g}" for v in r["values"].values())
                     + " |")
    lines += ["", "Kendall's τ between the metrics' orders of these methods (1: the same order):", "",
              "| metrics | τ |", "|---|---|"] + [f"| {k} | {t:+.2f} |" for k, t in r["kendall_tau"].items()]
    return "\n".join(lines) + "\n"


def write_readme(out: Path) -> None:
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("*/report.json"))]
    head = __doc__.split("\n\n")
    text = ["# Judge sanity report", "", "\n\n".join(head[1:4]), "",
            "Regenerate: `python benchmarks/judge_sanity.py " + " ".join(r["dataset"] for r in reports) + "`.",
            "Plots per data set: `corruptions.png` (b), `ranking.png` (c); numbers: `report.json`.", ""]
    text += [section(r) for r in reports]
    (out / "README.md").write_text("\n".join(text))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+", choices=list(SETS))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--samples", type=int, default=500, help="samples per method of the compare grid (c); at least half the held-out images")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    for name in args.datasets:
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        run(name, folder, args.samples, args.device)
    write_readme(args.out)
    print(f"wrote {args.out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
