"""``guidekit train-classifier`` and ``guidekit train-diffusion``: ADM networks on your data.

    guidekit train-classifier --data mnist16 --out runs/clf-ect --loss ect --loss-param eta=0.2 \\
        --flags "--image_size 16 --in_channels 1 --num_classes 10 --classifier_width 32 --classifier_depth 1 \\
                 --channel_mult 1,2,2 --classifier_attention_resolutions 4"
    guidekit train-diffusion --data my_images/ --image-size 32 --out runs/unet \\
        --flags "--image_size 32 --num_channels 64 --num_res_blocks 2 --learn_sigma True"

``--data`` is ``mnist16``, ``digits``, an ADM ``.npz`` (arr_0 uint8 NxHxWxC, arr_1 labels) or a
folder with one sub-folder of images per class. ``--out`` receives ``checkpoint.pt`` (every
``--save-every`` steps: model, EMA, optimizer, step and RNG states), then ``model.safetensors``
(the EMA weights, for sampling) and ``card.json``. A killed run continues with ``--resume``.
Under ``torchrun --nproc_per_node N`` each process takes 1/N of every batch (DDP; gloo on CPU).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

import guidekit as gk
from guidekit.cli import check_writable, parse_params
from guidekit.data import load_dataset
from guidekit.devices import resolve_device
from guidekit.errors import InvalidParameterError
from guidekit.io import atomic_write, remove_stale_temporaries
from guidekit.training import export_weights
from guidekit.training.distributed import init_world

from .factory import create_model, resolve_config


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="mnist16, digits, an ADM .npz file or a folder of class sub-folders")
    p.add_argument("--image-size", type=int, help="resize folder images to this size")
    p.add_argument("--flags", required=True, help='ADM flag string of the architecture, written --flags="--image_size 16 ..."')
    p.add_argument("--out", required=True, type=Path, help="output folder (checkpoint.pt, model.safetensors, card.json)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (split over torchrun processes)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ema-decay", type=float, default=0.9999, help="EMA decay, reached after the warm-up")
    p.add_argument("--grad-clip", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--diffusion-steps", type=int, default=None, help="T (default: --diffusion_steps of --flags, 1000)")
    p.add_argument("--schedule", choices=("linear", "cosine"), default=None, help="default: --noise_schedule of --flags")
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda:$LOCAL_RANK under torchrun)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def add_train_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-classifier`` and ``train-diffusion`` to the ``guidekit`` command line."""
    doc = __doc__.split("\n\n")
    p = subparsers.add_parser("train-classifier", help="train a noise-aware classifier (paper Algorithm 2, CE or ECT)",
                              description=doc[0] + "\n\n" + doc[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p)
    p.add_argument("--loss", default="ce", help="registered loss: ce, or ect (paper Eq. 12) with --loss-param eta=0.2")
    p.add_argument("--loss-param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-noise", action="store_true", help="train on clean images (t = 0)")
    p.set_defaults(func=run_train, kind="classifier")
    p = subparsers.add_parser("train-diffusion", help="train an ADM diffusion model (hybrid loss with learned sigma, else eps MSE)",
                              description=doc[0] + "\n\n" + doc[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p)
    p.add_argument("--class-dropout", type=float, default=0.0,
                   help="probability of the null label (the model's last class) for classifier-free guidance")
    p.add_argument("--null-label", type=int, default=None, help="default: the model's last class when --class-dropout > 0")
    p.set_defaults(func=run_train, kind="diffusion")


def _build(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, gk.GaussianDiffusion, dict]:
    config = resolve_config(args.flags)
    if (args.kind == "classifier") != (config.kind == "classifier"):
        raise InvalidParameterError(
            f"--flags describe a {config.kind} network; train-{args.kind} needs "
            + ("classifier flags (--classifier_width, --classifier_depth ...)" if args.kind == "classifier"
               else "diffusion model flags (--num_channels, --learn_sigma ...)")
        )
    diffusion = {"steps": args.diffusion_steps or config.diffusion.steps, "schedule": args.schedule or config.diffusion.schedule,
                 "learn_sigma": config.diffusion.learn_sigma}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)  # the initial weights come from --seed too
        model = create_model(config)
    return model.to(device), gk.GaussianDiffusion.create(**diffusion), diffusion


def _train_config(args: argparse.Namespace, loss_params: dict) -> gk.TrainConfig:
    """The :class:`~guidekit.TrainConfig` of the command line; a rejected value names its --flag."""
    common = dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                  ema_decay=args.ema_decay, grad_clip=args.grad_clip, seed=args.seed, save_every=args.save_every,
                  log_every=args.log_every)
    try:
        if args.kind == "classifier":
            return gk.TrainConfig(**common, loss=args.loss, loss_params=loss_params, noised=not args.no_noise)
        return gk.TrainConfig(**common, class_dropout=args.class_dropout, null_label=args.null_label)
    except (TypeError, ValueError) as exc:  # "TrainConfig steps must be an integer >= 1, got 0": name the flag
        flag = re.sub(r"^(?:TrainConfig )?'?(\w+)'?", lambda m: "--" + m[1].replace("_", "-"), str(exc), count=1)
        raise InvalidParameterError(flag) from None


def _check_data(args: argparse.Namespace, model: torch.nn.Module, data: Any) -> None:
    """The network's channels and size fit the images; labels fit the classes and the null label."""
    in_channels, size = getattr(model, "in_channels", None), getattr(model, "image_size", None)
    if in_channels is not None and in_channels != data.images.shape[1]:
        raise InvalidParameterError(f"--flags build a {in_channels}-channel network but {args.data} has "
                                    f"{data.images.shape[1]}-channel images: add --in_channels {data.images.shape[1]}")
    height, width = data.images.shape[-2:]
    if size is not None and (height, width) != (size, size):
        raise InvalidParameterError(f"--flags build a {size}×{size} network but {args.data} has {height}×{width} images: "
                                    f"use --image_size {height} in --flags" + (" (or --image-size to resize a folder)"
                                                                             if height == width else ""))
    conditional = getattr(model, "num_classes", None) is not None
    if args.kind == "diffusion" and args.class_dropout > 0 and not conditional:
        raise InvalidParameterError("--class-dropout trains a class-conditional model: add --class_cond True to --flags")
    if args.kind == "diffusion" and args.null_label is not None and conditional and len(data.labels) and \
            args.null_label <= int(data.labels.max()):
        raise InvalidParameterError(f"--null-label {args.null_label} is a label of the data (0..{int(data.labels.max())}); "
                                    "the null label must be above every real label, e.g. the model's last class")


def run_train(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise InvalidParameterError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    world = init_world(device)
    if args.resume and args.overwrite:
        raise InvalidParameterError("--resume continues the run in --out and --overwrite replaces it: pass one")
    check_writable(args.out, "--out")
    loss_params = parse_params(args.loss_param, "--loss-param") if args.kind == "classifier" else {}
    if args.kind == "classifier":
        gk.create("loss", args.loss, **loss_params)  # a wrong name or parameter is reported before the data is read
    config = _train_config(args, loss_params)
    if args.image_size is not None and (args.image_size < 1 or not Path(args.data).is_dir()):
        raise InvalidParameterError(f"--image-size resizes the images of a folder to a positive size; got "
                                    f"{args.image_size} for --data {args.data}" + ("" if Path(args.data).is_dir() else
                                    ", which is not a folder: match --image_size in --flags to its images instead"))
    data = load_dataset(args.data, image_size=args.image_size)
    model, diffusion, diffusion_kwargs = _build(args, device)
    _check_data(args, model, data)
    out: Path = args.out
    final = out / "model.safetensors"
    if final.exists() and not (args.resume or args.overwrite):
        raise InvalidParameterError(f"{out} already holds a finished run: pass --overwrite to replace it, or another --out")
    if world.is_main:  # temporary files a killed run left behind (a checkpoint's can be large)
        remove_stale_temporaries(*(out / name for name in ("checkpoint.pt", "model.safetensors", "card.json")))
    kw = dict(checkpoint=out / "checkpoint.pt", resume=args.resume, overwrite=args.overwrite, progress=args.progress)
    start = time.time()
    try:
        if args.kind == "classifier":
            result = gk.train_classifier(model, data.images, data.labels, diffusion, config, **kw)
        else:
            labels = data.labels if getattr(model, "num_classes", None) is not None else None
            result = gk.train_diffusion(model, data.images, labels, diffusion, config, **kw)
    except KeyboardInterrupt:
        saved = kw["checkpoint"]
        where = f"{saved} holds the last checkpoint (every --save-every steps)" if saved.exists() else "no checkpoint yet"
        print(f"interrupted: {where}; run the same command with --resume to continue", file=sys.stderr)
        return 130
    if world.is_main:
        export_weights(result.ema, final)
        card = {"data": str(args.data), "preprocessing": data.preprocessing, "flags": args.flags, "diffusion": diffusion_kwargs,
                "training": gk.training.loop.config_record(config), "seed": args.seed, "steps": result.step,
                "final_record": result.records[-1] if result.records else None, "world_size": world.size,
                "seconds_this_run": round(time.time() - start, 1), "guidekit_version": gk.__version__,
                "command": "guidekit " + " ".join(sys.argv[1:])}
        with atomic_write(out / "card.json", "w") as fh:
            fh.write(json.dumps(card, indent=1) + "\n")
        print(f"wrote {final} (EMA weights) and {out / 'card.json'}; last: {result.records[-1] if result.records else '-'}",
              file=sys.stderr)
    return 0
