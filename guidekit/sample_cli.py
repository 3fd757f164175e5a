"""``guidekit sample``: sample any network, unguided or with any registered guidance.

The networks come from :func:`guidekit.load_network`: a bundled model, a training folder, an ADM release
or flag string (guidekit-adm), or a plugin's own spec::

    guidekit sample --model mnist16-unet --classifier mnist16-classifier-ce --scaler entropy --gamma 2 \\
        --num-samples 16 --respacing ddim10 --out DIR
    guidekit sample --model runs/unet --classifier runs/clf --scaler entropy --gamma 2 --out DIR   # train-* outputs
    guidekit sample --model mnist16-unet-cond --guidance classifier-free --gamma 2 --respacing ddim10 --out DIR

ED-DPM configuration 3 (UADM(25)-G+EDS+ECT) on the released checkpoints::

    guidekit sample --model 256x256_diffusion_uncond --model-path 256x256_diffusion_uncond.pt \\
        --classifier 256x256_classifier+0.1ECT --classifier-path 256x256_classifier+0.1ECT.pt \\
        --scaler entropy --gamma 6 --respacing ddim25 --sampler ddim --num-samples 50000 \\
        --batch-size 64 --seed 0 --out samples/uadm25-g-eds-ect --device cuda

Writes ``samples.npz`` (ADM evaluator layout: ``arr_0`` uint8 NHWC, ``arr_1`` int64 labels),
``grid.png`` (the first samples) and ``run.json`` (the settings) into ``--out``. Images are streamed
to the ``.npz`` batch by batch, so memory does not grow with ``--num-samples``.

Many GPUs: ``--num-shards S --shard-index I`` (by default ``WORLD_SIZE`` and ``RANK``, as torchrun
sets them) samples the contiguous global indices ``[I*ceil(N/S), (I+1)*ceil(N/S))``. Sample i depends
only on ``(--seed, i)`` (and ``--classes`` cycle over global indices), so the shards, joined with
``guidekit merge-batches OUT.npz samples_*_shard*of{S}.npz``, equal a single run. Each shard writes
``samples_{N}x{H}x{W}x{C}_shard{I}of{S}.npz``, ``grid_shard{I}of{S}.png`` and ``run_shard{I}of{S}.json``.

Kills: finished batches are committed to ``samples....parts/`` (with a manifest of the options that change
the output) until the run completes, so ``--resume`` continues a killed run (also under torchrun, each
rank its shard) without losing or repeating a sample. An existing output is replaced only with
``--overwrite``; two runs into the same ``--out`` (and shard) cannot both proceed (a lock file).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from .devices import resolve_device
from .errors import InvalidParameterError, LabelError
from .networks import image_shape, load_network, weights_sha256
from .options import (
    accepts,
    check_guidance_params,
    check_respacing,
    check_writable,
    component_params,
    env_int,
    parse_params,
)

GRID_MAX = 64
#: the batch a single-process run writes (shards keep their counted names, for merge-batches)
SINGLE_NAME = "samples.npz"

NETWORK_HELP = ("a registered network (mnist16-unet; guidekit list network), a training folder (the --out of "
                "guidekit train-*), an ADM release name or flag string (--model=\"--image_size 64 ...\"), or a "
                "plugin's spec")


def add_sample_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sample`` sub-command to the ``guidekit`` command line."""
    p = subparsers.add_parser(
        "sample", help="sample any network, unguided or guided (writes samples.npz in the ADM layout and grid.png)",
        description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:4]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="the diffusion model: " + NETWORK_HELP)
    p.add_argument("--model-path", type=Path, help=".pt/.pth/.safetensors weights of --model (needed by "
                   "architectures without weights of their own, such as ADM releases and flag strings)")
    p.add_argument("--model-param", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument or loading option of --model, repeatable (e.g. dropout=0)")
    p.add_argument("--classifier", help="the classifier (same kinds of name as --model); omit for unguided sampling "
                   "or guidance without a classifier")
    p.add_argument("--classifier-path", type=Path, help="weights of the classifier")
    p.add_argument("--classifier-param", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument or loading option of --classifier, repeatable")
    p.add_argument("--guidance", help="guidance name (classifier, classifier-free, x0-classifier, ...; "
                   "see `guidekit list guidance`); default: classifier when --classifier is given, else none")
    p.add_argument("--guidance-param", action="append", default=[], metavar="KEY=VALUE",
                   help="guidance parameter, repeatable (e.g. null_label=1000, batched=False, phi=0.7)")
    p.add_argument("--scaler", default="constant",
                   help="any registered guidance scaler (guidekit list scaler): constant, entropy, ...")
    p.add_argument("--gamma", type=float,
                   help="alias of --scaler-param gamma=...: guidance scale γ, or CFG's w (default: the model card's "
                   "suggestion for classifier guidance, else 1.0, for scalers that take gamma)")
    p.add_argument("--scaler-param", action="append", default=[], metavar="KEY=VALUE",
                   help="scaler parameter, repeatable (e.g. gamma=6, normalizer=ed-dpm, end=700)")
    p.add_argument("--respacing", help="timestep respacing, e.g. ddim25 or 250 (default: the model card's "
                   "suggestion, else 250)")
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
                   help="alias of --model-param use_fp16=...: reference fp16 (torso convs) of an ADM model; "
                   "default: the README setting on CUDA")
    p.add_argument("--classifier-use-fp16", action=argparse.BooleanOptionalAction, default=None,
                   help="alias of --classifier-param use_fp16=...: reference fp16 of an ADM classifier")
    p.add_argument("--class-cond", action=argparse.BooleanOptionalAction, default=None,
                   help="alias of --model-param class_cond=...: whether an ADM architecture is class-conditional "
                   "(1000 classes)")
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


def _shard_range(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """(num_shards, shard_index, first, end): this shard's contiguous range of global sample indices."""
    num_shards = args.num_shards if args.num_shards is not None else env_int("WORLD_SIZE", 1, "--num-shards")
    index = args.shard_index if args.shard_index is not None else env_int("RANK", 0, "--shard-index")
    if num_shards < 1 or not 0 <= index < num_shards:
        raise InvalidParameterError(f"--shard-index must be in [0, --num-shards) and --num-shards >= 1; got shard "
                                    f"{index} of {num_shards} (set both, or run under torchrun)")
    per_shard = math.ceil(args.num_samples / num_shards)
    first = min(index * per_shard, args.num_samples)
    return num_shards, index, first, min(first + per_shard, args.num_samples)


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
    return sorted(p for p in [*out.glob("samples_*.parts"), *out.glob("samples.parts")] if not ours.fullmatch(p.name))


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
    "model_params": "--model-param", "classifier_params": "--classifier-param",
}


def _guidance_name(args: argparse.Namespace) -> str | None:
    """The guidance to build (``None``: unguided), checked against ``--classifier``."""
    from .guidance import takes_classifier

    name = args.guidance or ("classifier" if args.classifier else None)
    if name is None:
        return None
    needs = takes_classifier(name)
    if needs and not args.classifier:
        raise InvalidParameterError(f"--guidance {name} needs a classifier: give --classifier (and --classifier-path "
                                    "for one without weights of its own)")
    if not needs and args.classifier:
        raise InvalidParameterError(f"--guidance {name} uses no classifier: drop --classifier/--classifier-path")
    return name


def _build_guidance(name: str | None, classifier: Any, scaler: Any, guidance_params: dict[str, Any]) -> Any:
    """``create("guidance", name, ...)`` with the built scaler and the classifier if it takes one."""
    from .registry import create

    if name is None:
        return None
    params = {**guidance_params}
    if classifier is not None:
        params["classifier"] = classifier
        if name == "x0-classifier" and _takes_timestep(classifier):
            params.setdefault("timestep", 0)  # noise-aware classifiers are used as clean classifiers at t = 0
    return create("guidance", name, scaler=scaler, **params)


def _takes_timestep(net: Any) -> bool:
    """Whether ``net(x, t)`` is its call (a noise-aware classifier), rather than ``net(x)``."""
    import inspect

    try:
        params = list(inspect.signature(net.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return True
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 2 or any(
        p.kind is p.VAR_POSITIONAL for p in params)


def _guidance_takes_null_label(name: str) -> bool:
    """Whether guidance ``name`` conditions the model on labels (classifier-free and its relatives)."""
    from .registry import default_registry

    return hasattr(default_registry().get("guidance", name).factory, "null_label_of")


def _look(flag: str, spec: str, path: Path | None, params: dict[str, Any], fast: bool, role: str) -> torch.nn.Module:
    """The network's architecture and card (``device="meta"``: no weights read), checked for its role and weights."""
    net = load_network(spec, path, "meta", params=params, fast=fast)
    found = net.card.get("role")
    if found is not None and found != role:
        what = {"diffusion": "diffusion models", "classifier": "classifiers"}[role]
        note = "; an upsampler needs its low-resolution input, so drive it from Python" if found == "upsampler" else ""
        raise InvalidParameterError(f"{flag} {spec!r} is a{'n' if found[0] in 'aeiou' else ''} {found} network, but "
                                    f"{flag} takes {what}{note}")
    if net.card.get("random_weights"):
        raise InvalidParameterError(f"{flag}-path is required: {flag} {spec!r} is an architecture without weights of "
                                    f"its own; give its .pt/.pth/.safetensors weights with {flag}-path")
    return net


def default_respacing(card: dict[str, Any], steps: int) -> str:
    """The card's respacing, else its suggestion (an ADM release's README), else 250 steps (all if fewer)."""
    for settings in (card.get("diffusion"), card.get("suggested")):
        if isinstance(settings, dict) and settings.get("respacing"):
            return str(settings["respacing"])
    return "250" if steps >= 250 else ""


@attrs.frozen(eq=False)
class Plan:
    """What ``guidekit sample`` settled before loading any weights."""

    guidance_name: str | None
    classes: list[int] | None
    num_shards: int
    shard_index: int
    first: int
    end: int
    device: torch.device
    model_params: dict[str, Any]
    classifier_params: dict[str, Any]
    respacing: str
    sampler_name: str
    sampler_params: dict[str, Any]
    sampler: Any
    scaler_params: dict[str, Any]
    scaler: Any
    guidance_params: dict[str, Any]
    image_hwc: tuple[int, int, int]

    @property
    def suffix(self) -> str:
        return f"_shard{self.shard_index}of{self.num_shards}" if self.num_shards > 1 else ""


def _plan(args: argparse.Namespace) -> Plan:
    """Every check that needs no weights: options, components, and the networks' architectures and cards."""
    from .registry import create

    if args.num_samples < 1 or args.batch_size < 1:
        raise InvalidParameterError("--num-samples and --batch-size must be positive")
    if args.classifier_path is not None and args.classifier is None:
        raise InvalidParameterError("--classifier-path needs --classifier: name the classifier's architecture")
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
    model_params = component_params("model", parse_params(args.model_param, "--model-param"),
                                    use_fp16=args.use_fp16, class_cond=args.class_cond)
    classifier_params = component_params("classifier", parse_params(args.classifier_param, "--classifier-param"),
                                         use_fp16=args.classifier_use_fp16)
    look = _look("--model", args.model, args.model_path, model_params, args.fast, "diffusion")
    card = look.card
    conditional = getattr(look, "num_classes", None) is not None
    if classes is not None and guidance_name is None and not conditional:
        raise InvalidParameterError("--classes has no effect here: the model is unconditional and nothing guides it; "
                                    "add --classifier (or --guidance), or drop --classes")
    if guidance_name is not None and not conditional and _guidance_takes_null_label(guidance_name):
        raise InvalidParameterError(f"--guidance {guidance_name} needs a class-conditional model, but --model builds an "
                                    "unconditional one; use a class-conditional model (--class-cond, or --class_cond True "
                                    "in its flags) or classifier guidance")
    steps = int((card.get("diffusion") or {}).get("steps", 1000))
    respacing = args.respacing if args.respacing is not None else default_respacing(card, steps)
    check_respacing(respacing, steps)
    sampler_name = args.sampler or ("ddim" if respacing.startswith("ddim") else "ddpm")
    sampler_params = component_params("sampler", parse_params(args.sampler_param, "--sampler-param"), eta=args.eta)
    sampler = create("sampler", sampler_name, **sampler_params)
    scaler_params = component_params("scaler", parse_params(args.scaler_param, "--scaler-param"), gamma=args.gamma)
    guidance_params = parse_params(args.guidance_param, "--guidance-param")
    scaler = None
    if guidance_name is not None:
        if "gamma" not in scaler_params and accepts("scaler", args.scaler, "gamma"):
            suggested = (card.get("suggested") or {}).get("classifier_scale") if guidance_name == "classifier" else None
            scaler_params["gamma"] = suggested or 1.0  # a release README's suggestion for classifier guidance
        scaler = create("scaler", args.scaler, **scaler_params)
        check_guidance_params(guidance_name, guidance_params)
    elif scaler_params or guidance_params or args.scaler != "constant":
        raise InvalidParameterError("--scaler, --gamma, --scaler-param and --guidance-param need guidance: give "
                                    "--classifier or --guidance")
    channels, size = image_shape(look)
    if args.classifier:
        clf = _look("--classifier", args.classifier, args.classifier_path, classifier_params, args.fast, "classifier")
        clf_size = image_shape(clf, required=False)[1]
        if clf_size is not None and clf_size != size:
            raise InvalidParameterError(f"the classifier is {clf_size}px but the model is {size}px; give networks of "
                                        "one image size")
    return Plan(guidance_name, classes, num_shards, shard_index, first, end, device, model_params, classifier_params,
                respacing, sampler_name, sampler_params, sampler, scaler_params, scaler, guidance_params,
                (size, size, channels))


def run_sample(args: argparse.Namespace) -> int:
    """Run the ``sample`` sub-command; returns the exit status."""
    from .io import output_lock, sample_batch_name

    plan = _plan(args)
    name = SINGLE_NAME if plan.num_shards == 1 else sample_batch_name(args.num_samples, plan.image_hwc,
                                                                      plan.shard_index, plan.num_shards)
    command = "guidekit sample" + (f" (shard {plan.shard_index} of {plan.num_shards})" if plan.suffix else "")
    # the lock is named after the run record: runs of one shard with other sample counts share it (and the grid)
    with output_lock(args.out / f"run{plan.suffix}.json", command):
        return _sample(args, plan, args.out / name)


def _sample(args: argparse.Namespace, plan: Plan, npz: Path) -> int:
    """Load the networks, sample the pending chunks, write the batch, grid and run record (under the lock)."""
    import guidekit as gk  # gk.sample looked up at call time (tests interrupt a run through it)

    from .identity import components_identity
    from .io import save_grid, to_uint8
    from .resume import ChunkedSampleBatch

    out, suffix, first, end = args.out, plan.suffix, plan.first, plan.end
    run = ChunkedSampleBatch(npz, first, end, plan.image_hwc, record=out / f"run{suffix}.json",
                             companions=[out / f"grid{suffix}.png"], flags=OPTION_FLAGS,
                             mode="resume" if args.resume else "overwrite" if args.overwrite else "new",
                             others=_other_runs(out, npz.name, plan.num_shards))
    run.check_mode()  # before loading anything
    device, classes = plan.device, plan.classes
    try:
        model = load_network(args.model, args.model_path, device, params=plan.model_params, fast=args.fast)
        classifier = None
        if args.classifier:
            classifier = load_network(args.classifier, args.classifier_path, device, params=plan.classifier_params,
                                      fast=args.fast)
    except (FileNotFoundError, ImportError) as exc:
        print(f"guidekit sample: error: {exc}", file=sys.stderr)
        return 1
    diffusion = gk.GaussianDiffusion.from_model(model, respacing=plan.respacing)
    guidance = _build_guidance(plan.guidance_name, classifier, plan.scaler, plan.guidance_params)
    num_labels = getattr(guidance, "num_labels", None)  # CFG: the labels below the null label
    num_classes = _num_classes(classifier, model, plan.image_hwc, device)
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

    scaler_params, sampler_params, guided = plan.scaler_params, plan.sampler_params, guidance is not None
    options = {
        "model": args.model, "model_sha256": weights_sha256(model, args.model_path), "classifier": args.classifier,
        "classifier_sha256": None if classifier is None else weights_sha256(classifier, args.classifier_path),
        "guidance": plan.guidance_name, "guidance_params": plan.guidance_params,
        "scaler": args.scaler if guided else None, "gamma": scaler_params.get("gamma") if guided else None,
        "scaler_params": {k: v for k, v in scaler_params.items() if k != "gamma"},
        "respacing": plan.respacing, "sampler": plan.sampler_name, "eta": sampler_params.get("eta", 0.0),
        "sampler_params": {k: v for k, v in sampler_params.items() if k != "eta"},
        "num_samples": args.num_samples, "batch_size": args.batch_size,
        "seed": args.seed, "classes": classes, "model_fp16": bool(getattr(model, "use_fp16", False)),
        "classifier_fp16": bool(getattr(classifier, "use_fp16", False)),
        "class_cond": getattr(model, "num_classes", None) is not None,
        "clip_denoised": args.clip_denoised, "num_shards": plan.num_shards, "shard_index": plan.shard_index,
        "fast": args.fast, "device_type": device.type,
        # absent when not given: runs recorded before these options existed stay resumable
        **{key: value for key, value in (("model_params", _plain(plan.model_params)),
                                         ("classifier_params", _plain(plan.classifier_params))) if value},
        # the code of every component and network used: a resume after a plugin shadows one is refused
        **components_identity([("sampler", plan.sampler_name), ("scaler", args.scaler if guided else None),
                               ("guidance", plan.guidance_name)],
                              {"network (--model)": model, "classifier (--classifier)": classifier}),
    }
    shard_note = f" (shard {plan.shard_index} of {plan.num_shards})" if suffix else ""
    if run.prepare(options):
        print(f"{npz} is already complete{shard_note}; nothing to do", file=sys.stderr)
        return 0
    if run.num_done:
        print(f"resuming: {run.num_done}/{end - first} samples already done{shard_note}", file=sys.stderr)
    size, _, channels = plan.image_hwc
    started = time.perf_counter()
    try:
        for start, count in run.pending(args.batch_size):  # start: the global index of the batch's first sample
            x0, y = gk.sample(
                model, diffusion, (count, channels, size, size), sampler=plan.sampler, guidance=guidance,
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
        "model": args.model, "model_path": None if args.model_path is None else str(args.model_path),
        "model_params": _plain(plan.model_params), "classifier": args.classifier,
        "classifier_path": None if args.classifier_path is None else str(args.classifier_path),
        "classifier_params": _plain(plan.classifier_params),
        "guidance": plan.guidance_name, "guidance_params": plan.guidance_params,
        "scaler": options["scaler"], "gamma": options["gamma"], "scaler_params": options["scaler_params"],
        "respacing": plan.respacing, "sampler": plan.sampler_name, "sampler_params": sampler_params,
        "eta": sampler_params.get("eta", 0.0), "num_samples": args.num_samples,
        "batch_size": args.batch_size, "seed": args.seed, "device": str(device),
        "num_shards": plan.num_shards, "shard_index": plan.shard_index, "sample_range": [first, end],
        "model_fp16": options["model_fp16"], "classifier_fp16": options["classifier_fp16"],
        "seconds": round(time.perf_counter() - started, 3), "npz": npz.name, "fast": args.fast,
        "class_names": model.card.get("class_names") or (classifier.card.get("class_names") if classifier else None),
    }
    run.write_record(meta)
    run.cleanup()
    print(f"wrote {npz}" + (f" and {out / f'grid{suffix}.png'}" if grid else ""), file=sys.stderr)
    return 0


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON keeps them (tuples become lists), so a resume compares like with like."""
    return json.loads(json.dumps(params, default=str))


def _num_classes(classifier: Any, model: Any, image_hwc: tuple[int, int, int], device: torch.device) -> int | None:
    """The labels to draw from: the classifier's outputs (from its card, else one forward pass), else the model's."""
    if classifier is None:
        return getattr(model, "num_classes", None)
    known = getattr(classifier, "out_channels", None) or classifier.card.get("num_classes")
    if isinstance(known, int):
        return known
    size, _, channels = image_hwc
    x = torch.zeros(1, channels, size, size, device=device)
    with torch.no_grad():
        return int(classifier(x, torch.zeros(1, dtype=torch.int64, device=device)).shape[1])
