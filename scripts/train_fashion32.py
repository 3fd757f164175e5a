"""Train the bundled fashion32 models of guidekit-fashion (fixed seeds; the command and timings go in each card).

    apt-get install dataset-fashion-mnist              # Debian's Fashion-MNIST (70,000 28x28 images, MIT)
    python scripts/train_fashion32.py unet             # or unet-cond, classifier-ce, classifier-ect, oracle, reference
    python scripts/train_fashion32.py unet --resume    # continue after a kill (checkpoints in runs/fashion32/)
    python scripts/train_fashion32.py split            # after training: fingerprints, PCA, the cards' split
    python scripts/train_fashion32.py curves           # the logged training curves (from the checkpoints' records)

Every model trains on the 60,000 training images (28x28, /255, zero-padded by 2 px to 32x32, x*2-1). The
10,000 test images are never trained on: ``reference`` writes 2,000 of them (seeded choice) as the held-out
reference batch for FD/KID/precision/recall, and the oracle's accuracy is measured on the other 8,000.
Weights go to plugins/guidekit-fashion/guidekit_fashion/weights/ as NAME.safetensors (EMA weights) with NAME.json.
``split`` (after ``reference``) writes the training images' fingerprints (fashion32-train-fingerprints.npy)
and the pixel PCA fitted on them (fashion32-pca), and records both, with the reference, in every card's
``split`` (scripts/train_mnist16.py ``write_split``). The data is read at training time only; nothing here
runs when guidekit is used.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import guidekit_adm as adm
import numpy as np
import torch
from train_mnist16 import noisy_accuracy, recorded_split, sha256, store, train_oracle, write_split

import guidekit as gk

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "plugins" / "guidekit-fashion" / "guidekit_fashion" / "weights"
RUNS = ROOT / "runs" / "fashion32"
SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
PREPROCESSING = "uint8 28x28 / 255, zero-pad 2 px on every side to 32x32, then x*2-1"
DATA = "fashion-mnist (Debian dataset-fashion-mnist 0.0~git20200523.55506a9-1)"
REFERENCE_SIZE, REFERENCE_SEED = 2000, 0
DIFFUSION = {"steps": 1000, "schedule": "linear", "learn_sigma": True}
UNET_FLAGS = ("--image_size 32 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2,2,2 "
              "--attention_resolutions 4 --num_head_channels 32 --learn_sigma True")
CLASSIFIER_FLAGS = ("--image_size 32 --in_channels 1 --num_classes 10 --classifier_width 32 --classifier_depth 1 "
                    "--channel_mult 1,2,2,2 --classifier_attention_resolutions 4 --classifier_pool attention")
MODELS = {
    "unet": dict(flags=UNET_FLAGS, config=dict(steps=4000, batch_size=64, lr=5e-4, grad_clip=1.0, seed=1)),
    "unet-cond": dict(flags=UNET_FLAGS + " --class_cond True --num_classes 11",
                      config=dict(steps=1500, batch_size=64, lr=5e-4, grad_clip=1.0, seed=1, class_dropout=0.1,
                                  null_label=10)),
    "classifier-ce": dict(flags=CLASSIFIER_FLAGS, config=dict(steps=1500, batch_size=64, lr=3e-4, seed=2, loss="ce")),
    "classifier-ect": dict(flags=CLASSIFIER_FLAGS, config=dict(steps=1500, batch_size=64, lr=3e-4, seed=2, loss="ect",
                                                               loss_params={"eta": 0.2})),
    "oracle": dict(flags="", config=dict(epochs=4, batch_size=64, lr=2e-3, seed=3, width=64)),
    "reference": dict(flags="", config={}),
    "split": dict(flags="", config={}),
    "curves": dict(flags="", config={}),
}
CURVES = ROOT / "benchmarks" / "results" / "fashion32_training"
NAMES = ("unet", "unet-cond", "classifier-ce", "classifier-ect", "oracle")
SPLIT = ("60000 training images (the Fashion-MNIST training set); held out: 2000 of the 10000 test images "
         f"(torch.randperm seed {REFERENCE_SEED}, the reference), the oracle's accuracy on the other 8000")


def read_idx(name: str) -> np.ndarray:
    """One IDX file of the Debian package (big-endian header, then uint8 data)."""
    path = SOURCE / f"{name}.gz"
    if not path.is_file():
        sys.exit(f"{path} not found: apt-get install dataset-fashion-mnist")
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def to_fashion32(images28: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 32, 32) in [-1, 1] (zero padding is -1 after scaling)."""
    x = torch.from_numpy(images28.astype(np.float32) / 255.0)
    return torch.nn.functional.pad(x, (2, 2, 2, 2)).mul(2).sub(1).unsqueeze(1)


def load_split() -> tuple[gk.data.Dataset, gk.data.Dataset, gk.data.Dataset]:
    """(train: 60,000, reference: 2,000 test images, rest: the other 8,000 test images)."""
    def dataset(images: np.ndarray, labels: np.ndarray) -> gk.data.Dataset:
        return gk.data.Dataset("fashion32", to_fashion32(images), torch.from_numpy(labels.astype(np.int64)), 10,
                               PREPROCESSING, CLASS_NAMES)

    train = dataset(read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte"))
    test = dataset(read_idx("t10k-images-idx3-ubyte"), read_idx("t10k-labels-idx1-ubyte"))
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(REFERENCE_SEED))
    ref, rest = perm[:REFERENCE_SIZE].sort().values, perm[REFERENCE_SIZE:].sort().values
    pick = lambda idx: gk.data.Dataset("fashion32", test.images[idx], test.labels[idx], 10, PREPROCESSING, CLASS_NAMES)  # noqa: E731
    return train, pick(ref), pick(rest)


def write_curves() -> int:
    """benchmarks/results/fashion32_training/curves.json and .png: every logged record of each ADM network's run."""
    curves = {}
    for name in NAMES:
        ckpt = RUNS / name / "checkpoint.pt"
        if ckpt.is_file():
            curves[f"fashion32-{name}"] = torch.load(ckpt, map_location="cpu", weights_only=True)["records"]
    if not curves:
        print(f"no checkpoints under {RUNS}: train first", file=sys.stderr)
        return 1
    CURVES.mkdir(parents=True, exist_ok=True)
    (CURVES / "curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, records in curves.items():
        ax = axes[1] if "classifier" in name else axes[0]
        ax.plot([r["step"] for r in records], [r["loss"] for r in records], label=name)
        if "accuracy" in records[0]:
            axes[1].plot([r["step"] for r in records], [r["accuracy"] for r in records], "--", label=f"{name} accuracy")
    axes[0].set(title="diffusion models: training loss (mse + vb)", xlabel="step", yscale="log")
    axes[1].set(title="noise-aware classifiers: loss and batch accuracy", xlabel="step")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(CURVES / "curves.png", dpi=120)
    print(f"wrote {CURVES / 'curves.json'} and curves.png ({', '.join(curves)})")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=list(MODELS))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--trained-on", default=None, help="where it ran, for the card (default: CPU model and core count)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.model == "curves":
        return write_curves()
    train, reference, rest = load_split()
    spec = MODELS[args.model]
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    if args.model == "reference":
        from guidekit.io import to_uint8, write_sample_batch

        out = write_sample_batch(WEIGHTS / "fashion32-reference.npz", to_uint8(reference.images).numpy(),
                                 reference.labels.numpy())
        print(f"wrote {out} ({len(reference)} held-out test images, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()})")
        return 0
    if args.model == "split":
        write_split(WEIGHTS, "fashion32", train, reference, [f"fashion32-{n}" for n in NAMES], SPLIT,
                    {"data": DATA, "preprocessing": PREPROCESSING, "class_names": list(CLASS_NAMES)}, args,
                    held_name="fashion32-reference.npz")
        return 0
    name = f"fashion32-{args.model}"
    start = time.time()
    card: dict = {
        "name": name,
        "data": DATA,
        "preprocessing": PREPROCESSING,
        "split": recorded_split(WEIGHTS, "fashion32", SPLIT),
        "class_names": list(CLASS_NAMES),
        "command": "python scripts/train_fashion32.py " + " ".join(sys.argv[1:]),
        "guidekit_version": gk.__version__,
        "torch_version": torch.__version__,
        "trained_on": args.trained_on or f"{platform.processor() or platform.machine()} CPU, {args.threads} torch thread(s)",
    }
    if args.model == "oracle":
        model, metrics = train_oracle(train, rest, spec["config"])
        metrics = {"test_accuracy_8000": metrics["heldout_accuracy"]}
        card.update(architecture="guidekit SmallCNN (clean images; not an ADM network)", arch=dict(model.config),
                    training=spec["config"], seed=spec["config"]["seed"], metrics=metrics)
        if isinstance(card["split"], dict):
            card["features"] = {"pca": "fashion32-pca"}
        state = model.state_dict()
    else:
        config = gk.TrainConfig(**spec["config"], log_every=50, save_every=250)
        model = adm.create_model(spec["flags"])
        diff = gk.GaussianDiffusion.create(**DIFFUSION)
        ckpt = RUNS / args.model / "checkpoint.pt"
        if args.model.startswith("classifier"):
            result = gk.train_classifier(model, train.images, train.labels, diff, config, checkpoint=ckpt,
                                         resume=args.resume, progress=True)
        else:
            labels = train.labels if "cond" in args.model else None
            result = gk.train_diffusion(model, train.images, labels, diff, config, checkpoint=ckpt,
                                        resume=args.resume, progress=True)
        state = result.ema
        card.update(architecture="guidekit-adm " + ("EncoderUNetModel" if "classifier" in args.model else "UNetModel"),
                    flags=spec["flags"], training=dict(gk.training.loop.config_record(config)),
                    seed=config.seed, steps=config.steps, diffusion=dict(DIFFUSION), final_record=result.records[-1])
        if args.model.startswith("classifier"):
            model.load_state_dict(state)
            model.eval()
            card["metrics"] = {"test_accuracy_by_t": noisy_accuracy(model, rest)}
        if args.model == "unet-cond":
            card["null_label"] = 10
            card["num_classes"] = 10
    card["parameters"] = sum(v.numel() for v in state.values() if v.dtype.is_floating_point)
    card["train_seconds"] = round(time.time() - start, 1)
    out = store(state, name, card, WEIGHTS)
    card["sha256"] = sha256(out)
    (WEIGHTS / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
