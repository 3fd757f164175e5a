"""``guidekit sample``: sample a released ADM model with (entropy-driven) classifier guidance.

Example (ED-DPM configuration 3, UADM(25)-G+EDS+ECT)::

    guidekit sample --model 256x256_diffusion_uncond --model-path 256x256_diffusion_uncond.pt \\
        --classifier 256x256_classifier+0.1ECT --classifier-path 256x256_classifier+0.1ECT.pt \\
        --scaler entropy --gamma 6 --respacing ddim25 --sampler ddim --num-samples 50000 \\
        --batch-size 64 --seed 0 --out samples/uadm25-g-eds-ect --device cuda

Classifier-free guidance of a class-conditional model (any registered guidance works the same way)::

    guidekit sample --model MODEL --model-path MODEL.pt --guidance classifier-free --gamma 3 \
        --guidance-param null_label=1000 --scaler interval --scaler-param start=100 --scaler-param end=600 ...

Writes ``samples_{N}x{H}x{W}x3.npz`` (ADM evaluator layout: ``arr_0`` uint8 NHWC, ``arr_1`` int64
labels), ``grid.png`` (the first samples) and ``run.json`` (the settings) into ``--out``. Images are
streamed to the ``.npz`` batch by batch, so memory does not grow with ``--num-samples``.

Many GPUs: ``--num-shards S --shard-index I`` (by default ``WORLD_SIZE`` and ``RANK``, as torchrun
sets them) samples the contiguous global indices ``[I*ceil(N/S), (I+1)*ceil(N/S))``. Sample i depends
only on ``(--seed, i)`` (and ``--classes`` cycle over global indices), so the shards, joined with
``guidekit merge-batches OUT.npz samples_*_shard*of{S}.npz``, equal a single run. Each shard writes
``samples_{N}x{H}x{W}x3_shard{I}of{S}.npz``, ``grid_shard{I}of{S}.png`` and ``run_shard{I}of{S}.json``.

Kills: finished batches are committed to ``samples_....parts/`` (with a manifest of the options that change
the output) until the run completes, so ``--resume`` continues a killed run (also under torchrun, each
rank its shard) without losing or repeating a sample. An existing output is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from guidekit.cli import (
    accepts,
    check_guidance_params,
    check_respacing,
    check_writable,
    component_params,
    parse_params,
)
from guidekit.devices import resolve_device
from guidekit.errors import InvalidParameterError, LabelError

from .checkpoint import load_checkpoint
from .factory import resolve_config
from .flags import ModelConfig

GRID_MAX = 64


def add_sample_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sample`` sub-command to the ``guidekit`` command line."""
    p = subparsers.add_parser(
        "sample",
        help="sample a released ADM model with classifier guidance (writes an ADM-evaluator .npz)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--model", required=True,
        help='release name (e.g. 256x256_diffusion_uncond) or a flag string, written --model="--image_size 64 ..."',
    )
    p.add_argument("--model-path", type=Path, help=".pt/.pth/.safetensors weights of the model (required)")
    p.add_argument("--classifier", help="classifier release name or flag string (--classifier=\"--image_size ...\"); "
                   "omit for unguided sampling")
    p.add_argument("--classifier-path", type=Path, help="weights of the classifier")
    p.add_argument("--guidance", help="guidance name (classifier, classifier-free, x0-classifier, ...; "
                   "see `guidekit list guidance`); default: classifier when --classifier is given, else none")
    p.add_argument("--guidance-param", action="append", default=[], metavar="KEY=VALUE",
                   help="guidance parameter, repeatable (e.g. null_label=1000, batched=False, phi=0.7)")
    p.add_argument("--scaler", default="constant",
                   help="any registered guidance scaler (guidekit list scaler): constant, entropy, ...")
    p.add_argument("--gamma", type=float,
                   help="alias of --scaler-param gamma=...: guidance scale γ, or CFG's w (default: the README's "
                   "suggestion for classifier guidance, else 1.0, for scalers that take gamma)")
    p.add_argument("--scaler-param", action="append", default=[], metavar="KEY=VALUE",
                   help="scaler parameter, repeatable (e.g. gamma=6, normalizer=ed-dpm, end=700)")
    p.add_argument("--respacing", help="timestep respacing, e.g. ddim25 or 250 (default: the README's)")
    p.add_argument("--sampler", help="any registered sampler (guidekit list sampler); "
                   "default: ddim for ddimN respacing, else ddpm")
    p.add_argument("--sampler-param", action="append", default=[], metavar="KEY=VALUE",
                   help="sampler parameter, repeatable (e.g. eta=0.5)")
    p.add_argument("--eta", type=float, help="alias of --sampler-param eta=... (DDIM eta, default 0)")
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", help="comma-separated labels, cycled over the samples (default: random)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--use-fp16", action=argparse.BooleanOptionalAction, default=None,
                   help="reference fp16 (torso convs) for the model; default: README setting on CUDA")
    p.add_argument("--classifier-use-fp16", action=argparse.BooleanOptionalAction, default=None,
                   help="reference fp16 for the classifier; default: README setting on CUDA")
    p.add_argument("--class-cond", action=argparse.BooleanOptionalAction, default=None,
                   help="override whether the model architecture is class-conditional (1000 classes)")
    p.add_argument("--clip-denoised", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--num-shards", type=int, default=None,
                   help="split the samples into this many contiguous shards (default: $WORLD_SIZE, else 1)")
    p.add_argument("--shard-index", type=int, default=None,
                   help="which shard this process samples, 0-based (default: $RANK, else 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... or auto (cuda:$LOCAL_RANK under torchrun)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--fast", action="store_true",
                   help="fast path: bf16 autocast of float32 weights (unless --use-fp16), channels_last, "
                   "torch.compile on CUDA (see guidekit.fast)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue a killed run in --out (same options); a finished run is left as it is")
    again.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.set_defaults(func=run_sample)
    return p


def _env_int(name: str, default: int, flag: str) -> int:
    """An integer environment variable (as torchrun sets them), with a named error."""
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise InvalidParameterError(f"${name} is {value!r}, not an integer; fix or unset it, or pass {flag}") from None


def _shard_range(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """(num_shards, shard_index, first, end): this shard's contiguous range of global sample indices."""
    num_shards = args.num_shards if args.num_shards is not None else _env_int("WORLD_SIZE", 1, "--num-shards")
    index = args.shard_index if args.shard_index is not None else _env_int("RANK", 0, "--shard-index")
    if num_shards < 1 or not 0 <= index < num_shards:
        raise InvalidParameterError(f"--shard-index must be in [0, --num-shards) and --num-shards >= 1; got shard "
                                    f"{index} of {num_shards} (set both, or run under torchrun)")
    per_shard = math.ceil(args.num_samples / num_shards)
    first = min(index * per_shard, args.num_samples)
    return num_shards, index, first, min(first + per_shard, args.num_samples)


def _resolve(spec: str, flag: str) -> ModelConfig:
    """The ADM config of ``--model``/``--classifier``; a bundled guidekit network there gets a hint, not 'unknown'."""
    from guidekit.registry import available

    from .releases import UnknownReleaseError

    try:
        return resolve_config(spec)
    except UnknownReleaseError:
        if spec in available("network"):
            raise InvalidParameterError(
                f"{flag} {spec} is a guidekit network with its own weights, not an ADM release; `guidekit sample` "
                f"drives ADM checkpoints. Sample it with `guidekit compare --model ... --save-samples` or in Python: "
                f"gk.sample(gk.create('network', {spec!r}), ...)"
            ) from None
        raise


def _model_config(spec: str, class_cond: bool | None) -> ModelConfig:
    config = _resolve(spec, "--model")
    if class_cond is not None:
        config = attrs.evolve(config, kwargs={**config.kwargs, "num_classes": 1000 if class_cond else None})
    return config


def _parse_classes(spec: str | None) -> list[int] | None:
    """``--classes`` as a list of ints (None when not given)."""
    if not spec:
        return None
    try:
        classes = [int(c) for c in spec.split(",") if c.strip()]
    except ValueError:
        raise InvalidParameterError(f"--classes must be comma-separated integer labels such as 1,7,42; got {spec!r}") from None
    if not classes:
        raise InvalidParameterError(f"--classes {spec!r} names no label; give e.g. --classes 1,7,42 or leave it out")
    return classes


def _labels(classes: list[int] | None, start: int, count: int) -> torch.Tensor | None:
    if classes is None:
        return None
    return torch.tensor([classes[(start + i) % len(classes)] for i in range(count)], dtype=torch.int64)


def _other_runs(out: Path, name: str, num_shards: int) -> list[Path]:
    """Unfinished runs in ``out`` of another sample count, image size or shard count (not this run's shards)."""
    stem = name.split("_shard")[0].removesuffix(".npz")
    ours = re.compile(re.escape(stem) + (rf"_shard\d+of{num_shards}" if num_shards > 1 else "") + r"\.parts")
    return sorted(p for p in out.glob("samples_*.parts") if not ours.fullmatch(p.name))


#: option keys of the resume manifest -> the flags an error names
OPTION_FLAGS = {
    "model": "--model", "model_sha256": "--model-path (the checkpoint's contents)", "classifier": "--classifier",
    "classifier_sha256": "--classifier-path (the checkpoint's contents)", "scaler": "--scaler", "gamma": "--gamma",
    "scaler_params": "--scaler-param", "respacing": "--respacing", "sampler": "--sampler", "eta": "--eta",
    "sampler_params": "--sampler-param",
    "num_samples": "--num-samples", "batch_size": "--batch-size", "seed": "--seed", "classes": "--classes",
    "model_fp16": "--use-fp16", "classifier_fp16": "--classifier-use-fp16", "class_cond": "--class-cond",
    "clip_denoised": "--clip-denoised", "num_shards": "--num-shards", "shard_index": "--shard-index",
    "fast": "--fast", "device_type": "--device", "guidance": "--guidance", "guidance_params": "--guidance-param",
}


def _guidance_name(args: argparse.Namespace) -> str | None:
    """The guidance to build (``None``: unguided), checked against ``--classifier``."""
    from guidekit.guidance import takes_classifier

    name = args.guidance or ("classifier" if args.classifier else None)
    if name is None:
        return None
    needs = takes_classifier(name)
    if needs and not args.classifier:
        raise InvalidParameterError(f"--guidance {name} needs a classifier: give --classifier and --classifier-path")
    if not needs and args.classifier:
        raise InvalidParameterError(f"--guidance {name} uses no classifier: drop --classifier/--classifier-path")
    return name


def _build_guidance(name: str | None, classifier: Any, scaler: Any, guidance_params: dict[str, Any]) -> Any:
    """``gk.create("guidance", name, ...)`` with the built scaler and the classifier if it takes one."""
    import guidekit as gk

    if name is None:
        return None
    params = {**guidance_params}
    if classifier is not None:
        params["classifier"] = classifier
        if name == "x0-classifier":  # ADM classifiers are noise-aware: use them as clean classifiers at t = 0
            params.setdefault("timestep", 0)
    return gk.create("guidance", name, scaler=scaler, **params)


def _guidance_takes_null_label(name: str) -> bool:
    """Whether guidance ``name`` conditions the model on labels (classifier-free and its relatives)."""
    from guidekit.registry import default_registry

    return hasattr(default_registry().get("guidance", name).factory, "null_label_of")


def run_sample(args: argparse.Namespace) -> int:
    """Run the ``sample`` sub-command; returns the exit status."""
    import guidekit as gk
    from guidekit.io import atomic_write, sample_batch_name, save_grid, to_uint8
    from guidekit.resume import ChunkedSampleBatch, file_sha256

    if args.num_samples < 1 or args.batch_size < 1:
        raise InvalidParameterError("--num-samples and --batch-size must be positive")
    if args.model_path is None:
        _resolve(args.model, "--model")  # a bundled network's hint comes first
        raise InvalidParameterError("--model-path is required: the .pt/.pth/.safetensors weights of --model")
    if (args.classifier is None) != (args.classifier_path is None):
        raise InvalidParameterError("--classifier and --classifier-path go together")
    guidance_name = _guidance_name(args)
    if args.fast and guidance_name not in (None, "classifier"):
        raise InvalidParameterError(f"--fast drives classifier guidance only, not --guidance {guidance_name}: "
                                    "drop --fast")
    classes = _parse_classes(args.classes)
    if args.out.exists() and not args.out.is_dir():
        raise InvalidParameterError(f"--out {str(args.out)!r} is a file; give a folder (it is created if missing)")
    check_writable(args.out, "--out")
    num_shards, shard_index, first, end = _shard_range(args)
    device = resolve_device(args.device)
    config = _model_config(args.model, args.class_cond)
    if config.kind != "unet":
        raise InvalidParameterError(
            f"--model is a {config.kind}; `guidekit sample` drives diffusion UNets "
            "(for upsamplers use guidekit_adm.with_low_res from Python)"
        )
    conditional = bool(config.kwargs.get("num_classes"))
    if classes is not None and guidance_name is None and not conditional:
        raise InvalidParameterError("--classes has no effect here: the model is unconditional and nothing guides it; "
                                    "add --classifier/--classifier-path (or --guidance), or drop --classes")
    if guidance_name is not None and not conditional and _guidance_takes_null_label(guidance_name):
        raise InvalidParameterError(f"--guidance {guidance_name} needs a class-conditional model, but --model builds an "
                                    "unconditional one; use a class-conditional model (--class-cond, or --class_cond True "
                                    "in its flags) or classifier guidance")
    # components first: a wrong name or parameter is reported before any checkpoint is read
    respacing = args.respacing if args.respacing is not None else getattr(config, "suggested_respacing", "250")
    check_respacing(respacing, config.diffusion.steps)
    sampler_name = args.sampler or ("ddim" if respacing.startswith("ddim") else "ddpm")
    sampler_params = component_params("sampler", parse_params(args.sampler_param, "--sampler-param"), eta=args.eta)
    sampler = gk.create("sampler", sampler_name, **sampler_params)
    scaler_params = component_params("scaler", parse_params(args.scaler_param, "--scaler-param"), gamma=args.gamma)
    guidance_params = parse_params(args.guidance_param, "--guidance-param")
    scaler = None
    if guidance_name is not None:
        if "gamma" not in scaler_params and accepts("scaler", args.scaler, "gamma"):
            suggested = getattr(config, "classifier_scale", None) if guidance_name == "classifier" else None
            scaler_params["gamma"] = suggested or 1.0  # the README's suggestion for classifier guidance
        scaler = gk.create("scaler", args.scaler, **scaler_params)
        check_guidance_params(guidance_name, guidance_params)
    elif scaler_params or guidance_params or args.scaler != "constant":
        raise InvalidParameterError("--scaler, --gamma, --scaler-param and --guidance-param need guidance: give "
                                    "--classifier/--classifier-path or --guidance")
    size, out = config.kwargs["image_size"], args.out
    channels = config.kwargs.get("in_channels", 3)
    npz = out / sample_batch_name(args.num_samples, (size, size, channels), shard_index, num_shards)
    suffix = f"_shard{shard_index}of{num_shards}" if num_shards > 1 else ""
    run = ChunkedSampleBatch(npz, first, end, (size, size, channels), record=out / f"run{suffix}.json",
                             companions=[out / f"grid{suffix}.png"], flags=OPTION_FLAGS,
                             mode="resume" if args.resume else "overwrite" if args.overwrite else "new",
                             others=_other_runs(out, npz.name, num_shards))
    run.check_mode()  # before loading anything
    cconfig = _resolve(args.classifier, "--classifier") if args.classifier else None
    if cconfig is not None and cconfig.kind != "classifier":
        raise InvalidParameterError(f"--classifier {args.classifier!r} is not a classifier")
    try:
        fp16_default = False if args.fast else None  # the fast path autocasts float32 weights
        model = load_checkpoint(config, args.model_path, device=device,
                                use_fp16=fp16_default if args.use_fp16 is None else args.use_fp16)
        classifier = None
        if cconfig is not None:
            classifier = load_checkpoint(cconfig, args.classifier_path, device=device,
                                         use_fp16=fp16_default if args.classifier_use_fp16 is None
                                         else args.classifier_use_fp16)
    except (FileNotFoundError, ImportError) as exc:
        print(f"guidekit sample: error: {exc}", file=sys.stderr)
        return 1

    if classifier is not None and classifier.image_size != size:
        raise InvalidParameterError(f"classifier is {classifier.image_size}px but the model is {size}px")
    diffusion = gk.GaussianDiffusion.from_model(model, respacing=respacing)
    guidance = _build_guidance(guidance_name, classifier, scaler, guidance_params)
    num_labels = getattr(guidance, "num_labels", None)  # CFG: the labels below the null label
    num_classes = classifier.out_channels if classifier is not None else model.num_classes
    if classifier is None and num_labels is not None:
        try:
            num_classes = num_labels(model)
        except LabelError:  # a null label that is not the last class: the real labels must be given
            if classes is None:
                raise InvalidParameterError(f"--guidance-param null_label={guidance.null_label_of(model)} is not the "
                                            f"model's last class ({model.num_classes - 1}), so guidekit cannot draw real "
                                            "labels: give them with --classes") from None
        if classes is not None and guidance.null_label_of(model) in classes:
            raise InvalidParameterError(f"--classes holds the null label {guidance.null_label_of(model)}, which means "
                                        "'no class' to classifier-free guidance; give real labels only")

    options = {
        "model": args.model, "model_sha256": file_sha256(args.model_path), "classifier": args.classifier,
        "classifier_sha256": None if classifier is None else file_sha256(args.classifier_path),
        "guidance": guidance_name, "guidance_params": guidance_params,
        "scaler": args.scaler if guidance is not None else None,
        "gamma": scaler_params.get("gamma") if guidance is not None else None,
        "scaler_params": {k: v for k, v in scaler_params.items() if k != "gamma"},
        "respacing": respacing, "sampler": sampler_name, "eta": sampler_params.get("eta", 0.0),
        "sampler_params": {k: v for k, v in sampler_params.items() if k != "eta"},
        "num_samples": args.num_samples, "batch_size": args.batch_size,
        "seed": args.seed, "classes": classes, "model_fp16": bool(getattr(model, "use_fp16", False)),
        "classifier_fp16": bool(getattr(classifier, "use_fp16", False)), "class_cond": model.num_classes is not None,
        "clip_denoised": args.clip_denoised, "num_shards": num_shards, "shard_index": shard_index,
        "fast": args.fast, "device_type": device.type,
    }
    shard_note = f" (shard {shard_index} of {num_shards})" if suffix else ""
    if run.prepare(options):
        print(f"{npz} is already complete{shard_note}; nothing to do", file=sys.stderr)
        return 0
    if run.num_done:
        print(f"resuming: {run.num_done}/{end - first} samples already done{shard_note}", file=sys.stderr)
    started = time.perf_counter()
    try:
        for start, count in run.pending(args.batch_size):  # start: the global index of the batch's first sample
            x0, y = gk.sample(
                model, diffusion, (count, channels, size, size), sampler=sampler, guidance=guidance,
                y=_labels(classes, start, count), num_classes=num_classes, seed=args.seed, sample_offset=start,
                clip_denoised=args.clip_denoised, progress=args.progress, device=device, return_labels=True,
                fast=args.fast,
            )
            run.commit(start, to_uint8(x0.cpu()), None if y is None else y.cpu().to(torch.int64))
            print(f"sampled {run.num_done}/{end - first}{shard_note}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"interrupted with {run.num_done}/{end - first} samples kept{shard_note}; run the same command "
              "with --resume to continue", file=sys.stderr)
        return 130

    grid = run.finish(GRID_MAX)
    if grid:
        save_grid(np.stack(grid), out / f"grid{suffix}.png")
    meta: dict[str, Any] = {
        "model": args.model, "model_path": str(args.model_path), "classifier": args.classifier,
        "classifier_path": None if args.classifier_path is None else str(args.classifier_path),
        "guidance": guidance_name, "guidance_params": guidance_params,
        "scaler": args.scaler if guidance is not None else None,
        "gamma": scaler_params.get("gamma") if guidance is not None else None,
        "scaler_params": {k: v for k, v in scaler_params.items() if k != "gamma"},
        "respacing": respacing, "sampler": sampler_name, "sampler_params": sampler_params,
        "eta": sampler_params.get("eta", 0.0), "num_samples": args.num_samples,
        "batch_size": args.batch_size, "seed": args.seed, "device": str(device),
        "num_shards": num_shards, "shard_index": shard_index, "sample_range": [first, end],
        "model_fp16": bool(getattr(model, "use_fp16", False)),
        "classifier_fp16": bool(getattr(classifier, "use_fp16", False)),
        "seconds": round(time.perf_counter() - started, 3), "npz": npz.name, "fast": args.fast,
        "options": options,
    }
    with atomic_write(out / f"run{suffix}.json", "w") as fh:
        json.dump(meta, fh, indent=2)
    run.cleanup()
    print(f"wrote {npz}" + (f" and {out / f'grid{suffix}.png'}" if grid else ""), file=sys.stderr)
    return 0
