"""Train the bundled mnist16 models of guidekit-mnist16 (fixed seeds; the command and timings go in each card).

    python scripts/train_mnist16.py unet            # or unet-cond, classifier-ce, classifier-ect, oracle
    python scripts/train_mnist16.py unet --resume   # continue after a kill (checkpoints in runs/mnist16/)
    python scripts/train_mnist16.py split           # after training: the split files, the PCA, the cards' split

Each model trains on the 4,500-image training split of mnist16 (seed 0; the other 500 are held out
for the accuracies in the cards) and is written to plugins/guidekit-mnist16/guidekit_mnist16/weights/
as NAME.safetensors (EMA weights) with NAME.json (its card). ``split`` writes the training images'
fingerprints (mnist16-train-fingerprints.npy), the 500 held-out images (mnist16-heldout.npz, the
FD/KID reference), the pixel PCA fitted on the training images (mnist16-pca), and records all three
with their sha256 in every card's ``split`` (see :func:`write_split`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import guidekit_adm as adm
import numpy as np
import torch
import torch.nn.functional as F

import guidekit as gk
from guidekit.data import load_dataset
from guidekit.extractors.small import SmallCNN
from guidekit.training import export_weights

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "plugins" / "guidekit-mnist16" / "guidekit_mnist16" / "weights"
RUNS = ROOT / "runs" / "mnist16"
HOLDOUT, SPLIT_SEED = 500, 0
DIFFUSION = {"steps": 1000, "schedule": "linear", "learn_sigma": True}
UNET_FLAGS = ("--image_size 16 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2,2 "
              "--attention_resolutions 4 --num_head_channels 32 --learn_sigma True")
CLASSIFIER_FLAGS = ("--image_size 16 --in_channels 1 --num_classes 10 --classifier_width 32 --classifier_depth 1 "
                    "--channel_mult 1,2,2 --classifier_attention_resolutions 4 --classifier_pool attention")
MODELS = {
    "unet": dict(flags=UNET_FLAGS, config=dict(steps=3000, batch_size=64, lr=5e-4, grad_clip=1.0, seed=1)),
    "unet-cond": dict(flags=UNET_FLAGS + " --class_cond True --num_classes 11",
                      config=dict(steps=3000, batch_size=64, lr=5e-4, grad_clip=1.0, seed=1, class_dropout=0.1, null_label=10)),
    "classifier-ce": dict(flags=CLASSIFIER_FLAGS, config=dict(steps=2000, batch_size=64, lr=3e-4, seed=2, loss="ce")),
    "classifier-ect": dict(flags=CLASSIFIER_FLAGS, config=dict(steps=2000, batch_size=64, lr=3e-4, seed=2, loss="ect",
                                                               loss_params={"eta": 0.2})),
    "oracle": dict(flags="", config=dict(epochs=30, batch_size=64, lr=2e-3, seed=3, width=64)),
    "split": dict(flags="", config={}),
}
NAMES = ("unet", "unet-cond", "classifier-ce", "classifier-ect", "oracle")
PCA_COMPONENTS = 32
NOISE_LEVELS = (0, 100, 250, 500, 750, 999)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store(state: dict[str, torch.Tensor], name: str, card: dict, weights: Path = WEIGHTS) -> Path:
    """Write the weights as float16 safetensors (half the size; the models run in float32) and note it in the card."""
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    card["stored_dtype"] = "float16"
    return export_weights(half, weights / f"{name}.safetensors")


def noisy_accuracy(classifier: torch.nn.Module, held: gk.data.Dataset) -> dict[str, float]:
    """Held-out accuracy of a noise-aware classifier at a few noise levels t (seeded noise)."""
    diff = gk.GaussianDiffusion.create(**DIFFUSION)
    gen = torch.Generator().manual_seed(123)
    out = {}
    with torch.no_grad():
        for t in NOISE_LEVELS:
            tt = torch.full((len(held),), t)
            x_t = diff.q_sample(held.images, tt, torch.randn(held.images.shape, generator=gen))
            out[str(t)] = (classifier(x_t, tt).argmax(-1) == held.labels).double().mean().item()
    return out


def train_oracle(train: gk.data.Dataset, held: gk.data.Dataset, cfg: dict) -> tuple[SmallCNN, dict]:
    """A clean-image SmallCNN (not an ADM network), with ±1 px random shifts as augmentation."""
    torch.manual_seed(cfg["seed"])
    model = SmallCNN(in_channels=1, input_size=train.images.shape[-1], num_classes=10, width=cfg["width"],
                     spatial_channels=16)
    gen = torch.Generator().manual_seed(cfg["seed"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    x, y = train.images, train.labels
    model.train()
    for _ in gk.progress.progress(range(cfg["epochs"]), desc="training oracle", force=True):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg["batch_size"]):
            idx = order[i : i + cfg["batch_size"]]
            shift = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(F.pad(x[idx], (1, 1, 1, 1), value=-1.0), shifts=shift, dims=(2, 3))[..., 1:-1, 1:-1]
            loss = F.cross_entropy(model(xb)["logits"], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        for g in opt.param_groups:
            g["lr"] *= 0.9
    model.eval()
    with torch.no_grad():
        acc = (model(held.images)["logits"].argmax(-1) == held.labels).double().mean().item()
    return model, {"heldout_accuracy": acc}


def split_description(train_count: int) -> str:
    return f"{train_count} training images; {HOLDOUT} held out (Dataset.split(holdout={HOLDOUT}, seed={SPLIT_SEED}))"


def _same_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> bool:
    if not path.is_file():
        return False
    with np.load(path, allow_pickle=False) as d:
        return np.array_equal(d["arr_0"], images) and np.array_equal(d["arr_1"], labels)


def recorded_split(weights: Path, prefix: str, description: str) -> dict | str:
    """The split that ``split`` recorded (from the PCA's card), for the card of a model trained after it."""
    pca_card = weights / f"{prefix}-pca.json"
    return json.loads(pca_card.read_text())["split"] if pca_card.is_file() else description


def write_split(weights: Path, prefix: str, train: gk.data.Dataset, held: gk.data.Dataset, names: list[str],
                description: str, about: dict, args: argparse.Namespace, held_name: str | None = None) -> None:
    """The files that record a bundled set's split, and each card's ``split`` naming them with their sha256.

    ``PREFIX-train-fingerprints.npy``: one uint64 per training image (guidekit.comparison.split.fingerprints
    of its uint8 bytes, in training order); ``PREFIX-heldout.npz`` (or ``held_name``): the held-out images
    (ADM layout), the reference of guidekit compare; ``PREFIX-pca``: a PixelPCA fitted on the training images (a feature space
    no classifier learnt), named in the oracle's card under ``features``. Fails if a held-out image is
    byte-identical to a training image (the reference would not be held out).
    """
    from guidekit.comparison.split import fingerprints
    from guidekit.extractors.pca import PixelPCA
    from guidekit.io import to_uint8, write_sample_batch

    start = time.time()
    train_u8, held_u8 = to_uint8(train.images).numpy(), to_uint8(held.images).numpy()
    train_fp, held_fp = fingerprints(train_u8), fingerprints(held_u8)
    shared = int(np.isin(held_fp, train_fp).sum())
    if shared:
        sys.exit(f"{shared} held-out images are byte-identical to training images; the split is not held out")
    fp_file = weights / f"{prefix}-train-fingerprints.npy"
    with open(fp_file, "wb") as fh:
        np.save(fh, train_fp, allow_pickle=False)
    held_file = weights / (held_name or f"{prefix}-heldout.npz")
    if not _same_batch(held_file, held_u8, held.labels.numpy()):  # npz bytes carry a time stamp: keep an equal file
        write_sample_batch(held_file, held_u8, held.labels.numpy())
    split = {
        "description": description,
        "command": "python scripts/" + Path(sys.argv[0]).name + " " + " ".join(sys.argv[1:]),
        "train": {"file": fp_file.name, "sha256": sha256(fp_file), "count": len(train_fp),
                  "fingerprint": "first 8 bytes (little-endian uint64) of the sha256 of each training image's uint8 "
                                 "HxWxC bytes as guidekit.io.to_uint8 makes them, in training order"},
        "heldout": {"file": held_file.name, "sha256": sha256(held_file), "count": len(held_fp)},
    }
    pca = PixelPCA.fit(train_u8, PCA_COMPONENTS)
    pca_name = f"{prefix}-pca"
    pca_card = {
        "name": pca_name, **about, "split": split, "command": split["command"],
        "guidekit_version": gk.__version__, "torch_version": torch.__version__,
        "trained_on": args.trained_on or f"{platform.processor() or platform.machine()} CPU",
        "architecture": "guidekit PixelPCA (pixels in [-1, 1], centred, projected on the top principal directions "
                        "of the training images; knows no classes)",
        "pca": dict(pca.config), "metrics": {"explained_variance": round(pca.explained_variance, 4)},
        "parameters": sum(v.numel() for v in pca.state_dict().values()), "seed": None,
        "train_seconds": round(time.time() - start, 1), "stored_dtype": "float32",
    }
    out = export_weights(pca.state_dict(), weights / f"{pca_name}.safetensors")
    pca_card["sha256"] = sha256(out)
    (weights / f"{pca_name}.json").write_text(json.dumps(pca_card, indent=1) + "\n")
    for name in names:
        path = weights / f"{name}.json"
        if not path.is_file():
            print(f"{path.name} is not trained yet: its card gets the split when it is (rerun split then)")
            continue
        card = json.loads(path.read_text())
        card["split"] = split
        if "arch" in card:  # the oracle: the feature spaces judged beside its own
            card["features"] = {"pca": pca_name}
        path.write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(split, indent=1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=list(MODELS))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--trained-on", default=None, help="where it ran, for the card (default: CPU model and core count)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist16")
    train, held = data.split(HOLDOUT, seed=SPLIT_SEED)
    spec = MODELS[args.model]
    if args.model == "split":
        write_split(WEIGHTS, "mnist16", train, held, [f"mnist16-{n}" for n in NAMES], split_description(len(train)),
                    {"data": "mnist16", "preprocessing": data.preprocessing}, args)
        return 0
    name = f"mnist16-{args.model}"
    start = time.time()
    card: dict = {
        "name": name,
        "data": "mnist16",
        "preprocessing": data.preprocessing,
        "split": recorded_split(WEIGHTS, "mnist16", split_description(len(train))),
        "command": "python scripts/train_mnist16.py " + " ".join(sys.argv[1:]),
        "guidekit_version": gk.__version__,
        "torch_version": torch.__version__,
        "trained_on": args.trained_on or f"{platform.processor() or platform.machine()} CPU, {args.threads} torch thread(s)",
    }
    if args.model == "oracle":
        model, metrics = train_oracle(train, held, spec["config"])
        card.update(architecture="guidekit SmallCNN (clean images; not an ADM network)", arch=dict(model.config),
                    training=spec["config"], seed=spec["config"]["seed"], metrics=metrics)
        if isinstance(card["split"], dict):
            card["features"] = {"pca": "mnist16-pca"}
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
                    flags=spec["flags"], training={k: v for k, v in gk.training.loop.config_record(config).items()},
                    seed=config.seed, steps=config.steps, diffusion=dict(DIFFUSION), final_record=result.records[-1])
        if args.model.startswith("classifier"):
            model.load_state_dict(state)
            model.eval()
            card["metrics"] = {"heldout_accuracy_by_t": noisy_accuracy(model, held)}
        if args.model == "unet-cond":
            card["null_label"] = 10
            card["num_classes"] = 10
    card["parameters"] = sum(v.numel() for v in state.values() if v.dtype.is_floating_point)
    card["train_seconds"] = round(time.time() - start, 1)
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    out = store(state, name, card)
    card["sha256"] = sha256(out)
    (WEIGHTS / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
