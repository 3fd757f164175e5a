"""``guidekit train-classifier`` and ``guidekit train-diffusion``: any network guidekit can load, on your data.

    guidekit train-diffusion --data my_images/ --image-size 16 --channels 1 --steps 2000 --out runs/unet
    guidekit train-classifier --data my_images/ --image-size 16 --channels 1 --loss ect --loss-param eta=0.2 \\
        --out runs/clf
    guidekit sample --model runs/unet --classifier runs/clf --scaler entropy --gamma 2 --out samples/

The architecture: ``--model`` takes anything :func:`guidekit.load_network` does (a ``network`` component
such as ``adm-unet`` or a plugin's own, with ``--model-param K=V`` constructor arguments; an ADM flag
string; a bundled model, to fine-tune it); ``--flags`` is an ADM flag string (``--flags="--image_size 16
..."``). Without either, a small ADM UNet / noise-aware classifier sized from the data (guidekit-adm;
its flag string is printed and kept in the card); ``--class-dropout`` > 0 makes that UNet class-conditional
with a null label for classifier-free guidance.

``--data`` is ``mnist16``, ``digits``, an ADM ``.npz`` (arr_0 uint8 NxHxWxC, arr_1 labels) or a folder
with one sub-folder of images per class (natural order: "2" before "10"; greyscale images are read as
one channel, ``--channels`` converts). ``--out`` receives ``checkpoint.pt`` (every ``--save-every`` steps:
model, EMA, optimizer, step and RNG states), then ``model.safetensors`` (the EMA weights, for sampling)
and ``card.json`` (the architecture and its constructor arguments, the diffusion process, the classes
and their names, image size and channels, the data's fingerprint): ``guidekit sample --model OUT``
needs nothing else. A killed run continues with ``--resume``, which refuses another architecture, data
or process. Under ``torchrun --nproc_per_node N`` each process takes 1/N of every batch (DDP; gloo on CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..data import Dataset, load_dataset
from ..devices import resolve_device
from ..diffusion import GaussianDiffusion
from ..errors import InvalidParameterError, UnknownNetworkError, WriteError
from ..io import atomic_write, noted, output_lock, remove_stale_temporaries
from ..networks import CARD_FILE, WEIGHTS_FILE, card_digests, image_shape, load_network
from ..options import check_writable, parse_params
from .classifier import train_classifier
from .config import TrainConfig, card_record
from .data import fingerprint
from .diffusion import train_diffusion
from .distributed import init_world
from .loop import export_weights

#: the process a network without card["diffusion"] is trained with
DEFAULT_DIFFUSION = {"steps": 1000, "schedule": "linear", "learn_sigma": False}
ROLES = {"classifier": "classifier", "diffusion": "diffusion"}
#: what ``guidekit sample --model OUT`` uses without --respacing (DDIM, as ED-DPM's 25-step configurations)
SUGGESTED_RESPACING = "ddim25"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="mnist16, digits, an ADM .npz file or a folder of class sub-folders")
    p.add_argument("--image-size", type=int, help="resize folder images to this size")
    p.add_argument("--channels", type=int, choices=(1, 3), help="read folder images as 1 (grey) or 3 (RGB) channels "
                   "(default: what the images are)")
    arch = p.add_mutually_exclusive_group()
    arch.add_argument("--model", help="the architecture: a network component (adm-unet, a plugin's own), an ADM flag "
                      "string, a bundled model to fine-tune ... (default: a small ADM network sized from the data)")
    arch.add_argument("--flags", help='ADM flag string of the architecture, written --flags="--image_size 16 ..."')
    p.add_argument("--model-param", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument of the architecture, repeatable (e.g. dropout=0.1)")
    p.add_argument("--out", required=True, type=Path, help="output folder (checkpoint.pt, model.safetensors, card.json)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (split over torchrun processes)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ema-decay", type=float, default=0.9999, help="EMA decay, reached after the warm-up")
    p.add_argument("--grad-clip", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--diffusion-steps", type=int, default=None, help="T (default: the architecture card's, 1000)")
    p.add_argument("--schedule", choices=("linear", "cosine"), default=None,
                   help="default: the architecture card's (--noise_schedule of --flags)")
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
    description = "\n\n".join(doc[:5])
    p = subparsers.add_parser("train-classifier", help="train a noise-aware classifier (paper Algorithm 2, CE or ECT)",
                              description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p)
    p.add_argument("--loss", default="ce", help="registered loss: ce, or ect (paper Eq. 12) with --loss-param eta=0.2")
    p.add_argument("--loss-param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-noise", action="store_true", help="train on clean images (t = 0)")
    p.set_defaults(func=run_train, kind="classifier")
    p = subparsers.add_parser("train-diffusion", help="train a diffusion model (hybrid loss with learned sigma, else "
                              "eps MSE)", description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p)
    p.add_argument("--class-dropout", type=float, default=0.0,
                   help="probability of the null label (the model's last class) for classifier-free guidance")
    p.add_argument("--null-label", type=int, default=None, help="default: the model's last class when --class-dropout > 0")
    p.set_defaults(func=run_train, kind="diffusion")


def _levels(size: int) -> int:
    """Resolution levels of the default networks: halve while even and at least 8 px, at most 4 levels."""
    levels = 1
    while size % 2 == 0 and size >= 8 and levels < 4:
        size //= 2
        levels += 1
    return levels


def default_architecture(kind: str, data: Dataset, class_dropout: float = 0.0) -> str:
    """The ADM flag string of the default network for ``data``: sized from its images and classes.

    16 px and below: 32 channels and one residual block per level, as the bundled mnist16 models; larger:
    64 and two. Levels halve the size down to at least 4 px (at most 4 levels), with attention at the lowest.
    """
    channels, height, width = data.image_shape
    if height != width:
        raise InvalidParameterError(f"the default networks take square images, and {data.name} has {height}×{width} "
                                    "ones: resize a folder with --image-size, or give --model")
    levels = _levels(height)
    mult = ",".join(["1"] + ["2"] * (levels - 1))
    lowest = height // 2 ** (levels - 1)
    width_, blocks = (32, 1) if height <= 16 else (64, 2)
    common = f"--image_size {height} --in_channels {channels} --channel_mult {mult}"
    if kind == "classifier":
        # the attention pool's heads are 64 channels wide; one level of 32 channels (images below 8 px, odd sizes) needs 32
        heads = " --classifier_num_head_channels 32" if width_ * (2 if levels > 1 else 1) % 64 else ""
        return (f"{common} --num_classes {data.num_classes} --classifier_width {width_} --classifier_depth {blocks} "
                f"--classifier_attention_resolutions {lowest} --classifier_pool attention{heads}")
    flags = (f"{common} --num_channels {width_} --num_res_blocks {blocks} --attention_resolutions {lowest} "
             "--num_head_channels 32 --learn_sigma True")
    return flags + (f" --class_cond True --num_classes {data.num_classes + 1}" if class_dropout > 0 else "")


def _spec(args: argparse.Namespace, data: Dataset) -> tuple[str, str]:
    """(spec, the flag that named it) of the architecture."""
    if args.flags is not None:
        return args.flags, "--flags"
    if args.model is not None:
        return args.model, "--model"
    spec = default_architecture(args.kind, data, getattr(args, "class_dropout", 0.0))
    print(f"architecture: the default {args.kind} network for {data.name}: --flags=\"{spec}\"", file=sys.stderr)
    return spec, "default"


def _build(args: argparse.Namespace, spec: str, flag: str, params: dict[str, Any],
           device: torch.device) -> torch.nn.Module:
    """The network to train, initialised from ``--seed`` on the CPU (the same weights on any device)."""
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            model = load_network(spec, None, "cpu", params=params)
    except UnknownNetworkError:
        if flag == "default":
            raise UnknownNetworkError("the default architecture is a small ADM network from guidekit-adm: "
                                      "pip install guidekit-adm, or name one with --model (guidekit list network)") from None
        raise
    role = model.card.get("role")
    if role is not None and role != ROLES[args.kind]:
        if flag == "--flags" or spec.lstrip().startswith("--"):
            raise InvalidParameterError(
                f"{flag} describe a {role} network; train-{args.kind} needs "
                + ("classifier flags (--classifier_width, --classifier_depth ...)" if args.kind == "classifier"
                   else "diffusion model flags (--num_channels, --learn_sigma ...)"))
        raise InvalidParameterError(f"--model {spec!r} is a {role} network; train-{args.kind} needs a {args.kind} "
                                    "architecture")
    return model.to(device).train()


def _train_config(args: argparse.Namespace, loss_params: dict) -> TrainConfig:
    """The :class:`~guidekit.TrainConfig` of the command line; a rejected value names its --flag."""
    common = dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                  ema_decay=args.ema_decay, grad_clip=args.grad_clip, seed=args.seed, save_every=args.save_every,
                  log_every=args.log_every)
    try:
        if args.kind == "classifier":
            return TrainConfig(**common, loss=args.loss, loss_params=loss_params, noised=not args.no_noise)
        return TrainConfig(**common, class_dropout=args.class_dropout, null_label=args.null_label)
    except (TypeError, ValueError) as exc:  # "TrainConfig steps must be an integer >= 1, got 0": name the flag
        flag = re.sub(r"^(?:TrainConfig )?'?(\w+)'?", lambda m: "--" + m[1].replace("_", "-"), str(exc), count=1)
        raise InvalidParameterError(flag) from None


def _check_data(args: argparse.Namespace, flag: str, model: torch.nn.Module, data: Dataset) -> None:
    """The network's channels and size fit the images; labels fit the classes and the null label."""
    in_channels, size = image_shape(model, required=False)
    flags = flag == "--flags" or (flag == "--model" and args.model.lstrip().startswith("--"))
    name = flag if flag != "default" else "the default architecture"
    if in_channels is not None and in_channels != data.images.shape[1]:
        fix = (f"add --in_channels {data.images.shape[1]} to {flag}" if flags else
               f"build it for {data.images.shape[1]} channels (its constructor argument, with --model-param)")
        raise InvalidParameterError(f"{name} builds a {in_channels}-channel "
                                    f"network but {args.data} has {data.images.shape[1]}-channel images: {fix}"
                                    + (", or --channels to convert a folder's images" if Path(args.data).is_dir() else ""))
    height, width = data.images.shape[-2:]
    if size is not None and (height, width) != (size, size):
        fix = f"use --image_size {height} in {flag}" if flags else "give its image size with --model-param"
        raise InvalidParameterError(f"{name} build{'s' if flag != '--flags' else ''} a {size}×{size} network but {args.data} has {height}×{width} images: "
                                    + fix + (" (or --image-size to resize a folder)" if height == width else ""))
    conditional = getattr(model, "num_classes", None) is not None
    if args.kind == "diffusion" and args.class_dropout > 0 and not conditional:
        raise InvalidParameterError("--class-dropout trains a class-conditional model: " + (
            f"add --class_cond True to {flag}" if flags else "give --model a class-conditional architecture"))
    if args.kind == "diffusion" and args.null_label is not None and conditional and len(data.labels) and \
            args.null_label <= int(data.labels.max()):
        raise InvalidParameterError(f"--null-label {args.null_label} is a label of the data (0..{int(data.labels.max())}); "
                                    "the null label must be above every real label, e.g. the model's last class")


def _load_data(args: argparse.Namespace) -> Dataset:
    folder = Path(args.data).is_dir()
    if args.image_size is not None and (args.image_size < 1 or not folder):
        raise InvalidParameterError(f"--image-size resizes the images of a folder to a positive size; got "
                                    f"{args.image_size} for --data {args.data}" + ("" if folder else
                                    ", which is not a folder: match --image_size in --flags to its images instead"))
    data = load_dataset(args.data, image_size=args.image_size, channels=args.channels)
    if args.channels is not None and data.images.shape[1] != args.channels:
        raise InvalidParameterError(f"--channels converts the images of a folder; --data {args.data} has "
                                    f"{data.images.shape[1]}-channel images: drop --channels")
    if data.class_names:
        print("classes: " + ", ".join(f"{i}={name}" for i, name in enumerate(data.class_names)), file=sys.stderr)
    return data


def _plain(value: Any) -> Any:
    """``value`` as JSON keeps it (tuples become lists), so records compare alike before and after saving."""
    return json.loads(json.dumps(value, default=str))


def _card(args: argparse.Namespace, spec: str, params: dict[str, Any], model: torch.nn.Module, data: Dataset,
          diffusion: dict[str, Any], config: TrainConfig, result: Any, world_size: int, seconds: float,
          final: Path) -> dict[str, Any]:
    """Everything ``guidekit sample --model OUT`` and a reader need about the trained network."""
    import guidekit

    from ..resume import file_sha256

    channels, height, _ = data.image_shape
    built = model.card
    card: dict[str, Any] = {
        "name": args.out.resolve().name, "kind": args.kind, "role": ROLES[args.kind],
        "network": {"spec": spec, "params": _plain(params)},
        "architecture": built.get("architecture") or f"{type(model).__module__}.{type(model).__qualname__}",
        "constructor": _plain(built.get("constructor")),
    }
    if spec.lstrip().startswith("--"):
        card["flags"] = spec
    card.update({"diffusion": diffusion, "image_size": height, "channels": channels})
    names = list(data.class_names) or [str(i) for i in range(data.num_classes)]
    card["classes"] = {str(i): name for i, name in enumerate(names)}
    card["class_names"] = names
    num_classes = getattr(model, "num_classes", None)
    if args.kind == "classifier":
        card["num_classes"] = data.num_classes
    elif num_classes is not None:
        null = config.null_label if config.null_label is not None else (
            num_classes - 1 if config.class_dropout > 0 else None)
        card["num_classes"] = null if null is not None else num_classes
        if null is not None:
            card["null_label"] = null
    card.update({
        "data": str(args.data), "preprocessing": data.preprocessing,
        "data_fingerprint": fingerprint(data.images, data.labels), "training": card_record(config, args.kind),
        "seed": args.seed, "steps": result.step, "final_record": result.records[-1] if result.records else None,
        "world_size": world_size, "seconds_this_run": round(seconds, 1), "guidekit_version": guidekit.__version__,
        "torch_version": torch.__version__, "command": "guidekit " + " ".join(sys.argv[1:]),
        "weights_file": final.name, "sha256": file_sha256(final),
        "suggested": {"respacing": SUGGESTED_RESPACING}, "inputs": _plain(result.inputs),
    })
    card["checked"] = card_digests(card)  # a hand edit of what the weights depend on is refused on loading
    return card


def run_train(args: argparse.Namespace) -> int:
    """Run ``train-classifier`` / ``train-diffusion``; returns the exit status."""
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
        from ..registry import create

        create("loss", args.loss, **loss_params)  # a wrong name or parameter is reported before the data is read
    config = _train_config(args, loss_params)
    params = parse_params(args.model_param, "--model-param")
    data = _load_data(args)
    spec, flag = _spec(args, data)
    model = _build(args, spec, flag, params, device)
    _check_data(args, flag, model, data)
    card_diffusion = model.card.get("diffusion") or DEFAULT_DIFFUSION
    diffusion_kwargs = {"steps": args.diffusion_steps or card_diffusion.get("steps", 1000),
                        "schedule": args.schedule or card_diffusion.get("schedule", "linear"),
                        "learn_sigma": bool(card_diffusion.get("learn_sigma", False))}
    diffusion = GaussianDiffusion.create(**diffusion_kwargs)
    architecture = _plain({"spec": spec, "params": params, "constructor": model.card.get("constructor")})
    out: Path = args.out
    final = out / WEIGHTS_FILE
    lock = output_lock(out, f"guidekit train-{args.kind}") if world.is_main else contextlib.nullcontext()
    with lock:
        if final.exists() and (out / CARD_FILE).exists() and not (args.resume or args.overwrite):
            raise InvalidParameterError(f"{out} already holds a finished run: pass --overwrite to replace it, or "
                                        "another --out")
        if world.is_main:  # temporary files a killed run left behind (a checkpoint's can be large)
            remove_stale_temporaries(*(out / name for name in ("checkpoint.pt", WEIGHTS_FILE, CARD_FILE)))
        kw = dict(checkpoint=out / "checkpoint.pt", resume=args.resume, overwrite=args.overwrite,
                  progress=args.progress, settings={"architecture": architecture})
        start = time.time()
        try:
            if args.kind == "classifier":
                result = train_classifier(model, data.images, data.labels, diffusion, config, **kw)
            else:
                labels = data.labels if getattr(model, "num_classes", None) is not None else None
                result = train_diffusion(model, data.images, labels, diffusion, config, **kw)
        except KeyboardInterrupt:
            saved = kw["checkpoint"]
            where = f"{saved} holds the last checkpoint (every --save-every steps)" if saved.exists() else "no checkpoint yet"
            print(f"interrupted: {where}; run the same command with --resume to continue", file=sys.stderr)
            return 130
        if world.is_main:
            # the card marks a finished run: gone while the weights change, so that a kill or a full disk in between
            # leaves a folder that says "not finished, --resume" rather than an old card beside new weights
            (out / CARD_FILE).unlink(missing_ok=True)
            try:
                export_weights(result.ema, final)
                card = _card(args, spec, params, model, data, diffusion_kwargs, config, result, world.size,
                             time.time() - start, final)
                with atomic_write(out / CARD_FILE, "w") as fh:
                    fh.write(json.dumps(card, indent=1) + "\n")
            except WriteError as exc:
                raise noted(exc, f"the training itself finished and {out / 'checkpoint.pt'} holds it: fix the cause, then "
                            "run the same command with --resume to write the weights and card") from None
            last = result.records[-1] if result.records else "-"
            print(f"wrote {final} (EMA weights) and {out / CARD_FILE}; last: {last}", file=sys.stderr)
            print(f"sample it with: guidekit sample --model {out} --out SAMPLES" if args.kind == "diffusion" else
                  f"guide with it: guidekit sample --model MODEL --classifier {out} --out SAMPLES", file=sys.stderr)
    return 0
