"""Parse the reference command-line flag strings into constructor kwargs (notes §1.8).

``parse_flags("--attention_resolutions 32,16,8 --class_cond True ...")`` merges the flags with the
defaults of the reference scripts (``model_and_diffusion_defaults``, ``sr_model_and_diffusion_defaults``,
``classifier_defaults`` + diffusion defaults, or ED-DPM's classifier defaults) and applies the
builder logic: channel_mult from the image size, attention resolutions → downsample factors,
out_channels 6 with learn_sigma, 1000 classes with class_cond, num_head_channels 64 for classifiers.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from .errors import FlagError

KINDS = ("unet", "superres", "classifier")
FLAVORS = ("guided-diffusion", "ed-dpm")

MODEL_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "image_size": 64,
        "num_channels": 128,
        "num_res_blocks": 2,
        "num_heads": 4,
        "num_heads_upsample": -1,
        "num_head_channels": -1,
        "attention_resolutions": "16,8",
        "channel_mult": "",
        "dropout": 0.0,
        "class_cond": False,
        "use_checkpoint": False,
        "use_scale_shift_norm": True,
        "resblock_updown": False,
        "use_fp16": False,
        "use_new_attention_order": False,
    }
)
DIFFUSION_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "learn_sigma": False,
        "diffusion_steps": 1000,
        "noise_schedule": "linear",
        "timestep_respacing": "",
        "use_kl": False,
        "predict_xstart": False,
        "rescale_timesteps": False,
        "rescale_learned_sigmas": False,
    }
)
_SR_DROPPED = ("image_size", "channel_mult", "use_new_attention_order")
SR_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        **{k: v for k, v in MODEL_DEFAULTS.items() if k not in _SR_DROPPED},
        **DIFFUSION_DEFAULTS,
        "large_size": 256,
        "small_size": 64,
    }
)
CLASSIFIER_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "image_size": 64,
        "classifier_use_fp16": False,
        "classifier_width": 128,
        "classifier_depth": 2,
        "classifier_attention_resolutions": "32,16,8",
        "classifier_use_scale_shift_norm": True,
        "classifier_resblock_updown": True,
        "classifier_pool": "attention",
    }
)
ED_CLASSIFIER_EXTRA: Mapping[str, Any] = MappingProxyType(
    {"classifier_out_channel": 1000, "num_classes": 1000, "dropout": 0.0, "classifier_num_head_channels": 64}
)
ED_MODEL_EXTRA: Mapping[str, Any] = MappingProxyType({"num_classes": 1000, "in_channels": 3})
#: flags of the sampling/training scripts: accepted, kept in ``extra``, no effect on the architecture
SCRIPT_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "clip_denoised": True,
        "num_samples": 10000,
        "batch_size": 16,
        "use_ddim": False,
        "model_path": "",
        "classifier_path": "",
        "classifier_scale": 1.0,
        "base_samples": "",
        "use_entropy_scale": False,
        "fix_seed": False,
        "specified_class": -1,
        "log_dir": "",
        "detail": False,
        "save_imgs_for_visualization": True,
        "microbatch": -1,
        "lr": 1e-4,
        "weight_decay": 0.0,
        "noised": True,
        "iterations": 150000,
        "anneal_lr": False,
        "entropy_constraint_loss_weight": 0.1,
    }
)

#: channel_mult chosen from the image size when the flag is "" (ED-DPM adds 32 for CIFAR-10)
CHANNEL_MULT = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}
ED_CHANNEL_MULT = {**CHANNEL_MULT, 32: (1, 2, 2, 2)}
SR_CHANNEL_MULT = {512: (1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 64: (1, 2, 3, 4)}
NUM_CLASSES = 1000
#: guidekit's extensions to the reference flags (small and grey-scale models): kept in ``args`` only when given
EXTENSION_DEFAULTS: Mapping[str, Any] = MappingProxyType({"in_channels": 3, "num_classes": NUM_CLASSES})

_TRUE = ("yes", "true", "t", "y", "1")
_FALSE = ("no", "false", "f", "n", "0")


@attrs.frozen
class DiffusionSettings:
    """The diffusion process a network was trained with (and a suggested respacing)."""

    steps: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    schedule: str = attrs.field(default="linear", validator=attrs.validators.in_(("linear", "cosine")))
    learn_sigma: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    respacing: str = attrs.field(default="", validator=attrs.validators.instance_of(str))


@attrs.frozen(kw_only=True)
class ModelConfig:
    """A network architecture: which class, its constructor kwargs, and its diffusion settings."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    kwargs: Mapping[str, Any] = attrs.field(converter=lambda d: MappingProxyType(dict(d)))
    diffusion: DiffusionSettings = attrs.field(factory=DiffusionSettings)
    fp16: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    flavor: str = attrs.field(default="guided-diffusion", validator=attrs.validators.in_(FLAVORS))
    args: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda d: MappingProxyType(dict(d)))
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda d: MappingProxyType(dict(d)))


def _convert(name: str, raw: str, default: Any) -> Any:
    """Convert a flag value with the type of its default (``str2bool`` for booleans)."""
    try:
        if isinstance(default, bool):
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError("expected a boolean such as True/False")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return raw
    except ValueError as exc:
        raise FlagError(f"--{name}: cannot parse {raw!r} ({exc})") from None


def tokenize(flags: str | Sequence[str]) -> dict[str, str]:
    """Split ``--name value`` / ``--name=value`` tokens into a name → raw-string dict."""
    tokens = shlex.split(flags) if isinstance(flags, str) else [str(t) for t in flags]
    raw: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise FlagError(f"expected a --flag, got {token!r} in {' '.join(tokens)!r}")
        if "=" in token:
            name, value = token[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("--"):
                raise FlagError(f"flag {token} has no value (write e.g. '{token} True')")
            name, value = token[2:], tokens[i + 1]
            i += 2
        raw[name.replace("-", "_")] = value
    return raw


def defaults_for(kind: str, flavor: str) -> dict[str, Any]:
    """The reference script defaults that a flag string of this kind is merged with."""
    if kind == "unet":
        extra = ED_MODEL_EXTRA if flavor == "ed-dpm" else {}
        return {**MODEL_DEFAULTS, **extra, **DIFFUSION_DEFAULTS}
    if kind == "superres":
        if flavor == "ed-dpm":
            raise FlagError("ED-DPM has no upsampler builder (its sr_create_model is deleted); use guided-diffusion")
        return dict(SR_DEFAULTS)
    if flavor == "ed-dpm":
        return {**CLASSIFIER_DEFAULTS, **ED_CLASSIFIER_EXTRA}
    return {**CLASSIFIER_DEFAULTS, **DIFFUSION_DEFAULTS}


def guess_kind(names: Sequence[str]) -> str:
    """superres if --large_size/--small_size, classifier if only classifier flags, else unet."""
    names = set(names)
    if names & {"large_size", "small_size"}:
        return "superres"
    model_only = set(MODEL_DEFAULTS) - {"image_size", "dropout", "channel_mult"}
    classifier_only = set(CLASSIFIER_DEFAULTS) - {"image_size"}
    if names & classifier_only and not names & model_only:
        return "classifier"
    return "unet"


def _ds(resolutions: str, size: int, flag: str) -> tuple[int, ...]:
    try:
        return tuple(size // int(res) for res in resolutions.split(","))
    except (ValueError, ZeroDivisionError):
        raise FlagError(f"--{flag} must be comma-separated resolutions such as 32,16,8, got {resolutions!r}") from None


def _mult(table: Mapping[int, tuple], size: int, flag: str) -> tuple:
    if size not in table:
        raise FlagError(f"unsupported --{flag} {size}; the builder knows {sorted(table)}")
    return table[size]


def _channel_mult(a: Mapping[str, Any], flavor: str) -> tuple:
    """``--channel_mult`` if given, else the reference builder's choice for the image size."""
    size, given = a["image_size"], a.get("channel_mult", "")
    if given == "":
        if size not in (ED_CHANNEL_MULT if flavor == "ed-dpm" else CHANNEL_MULT):
            raise FlagError(
                f"unsupported --image_size {size}: the reference builder knows {sorted(CHANNEL_MULT)}; "
                "for other sizes give --channel_mult explicitly, e.g. --channel_mult 1,2,2"
            )
        return _mult(ED_CHANNEL_MULT if flavor == "ed-dpm" else CHANNEL_MULT, size, "image_size")
    try:
        return tuple(int(m) for m in given.split(","))
    except ValueError:
        raise FlagError(
            f"--channel_mult must be comma-separated integers, got {given!r} "
            "(the reference parses it with int(); fractional multipliers come only from the image size)"
        ) from None


def _unet_kwargs(a: Mapping[str, Any], flavor: str) -> dict[str, Any]:
    size = a["image_size"]
    mult = _channel_mult(a, flavor)
    num_classes = a.get("num_classes", NUM_CLASSES)
    return {
        "image_size": size,
        "in_channels": a.get("in_channels", 3),
        "model_channels": a["num_channels"],
        "out_channels": a.get("in_channels", 3) * (2 if a["learn_sigma"] else 1),
        "num_res_blocks": a["num_res_blocks"],
        "attention_resolutions": _ds(a["attention_resolutions"], size, "attention_resolutions"),
        "dropout": a["dropout"],
        "channel_mult": mult,
        "num_classes": num_classes if a["class_cond"] else None,
        "use_checkpoint": a["use_checkpoint"],
        "use_fp16": a["use_fp16"],
        "num_heads": a["num_heads"],
        "num_head_channels": a["num_head_channels"],
        "num_heads_upsample": a["num_heads_upsample"],
        "use_scale_shift_norm": a["use_scale_shift_norm"],
        "resblock_updown": a["resblock_updown"],
        "use_new_attention_order": a["use_new_attention_order"],
    }


def _superres_kwargs(a: Mapping[str, Any]) -> dict[str, Any]:
    size = a["large_size"]
    return {
        "image_size": size,
        "in_channels": 3,
        "model_channels": a["num_channels"],
        "out_channels": 6 if a["learn_sigma"] else 3,
        "num_res_blocks": a["num_res_blocks"],
        "attention_resolutions": _ds(a["attention_resolutions"], size, "attention_resolutions"),
        "dropout": a["dropout"],
        "channel_mult": _mult(SR_CHANNEL_MULT, size, "large_size"),
        "num_classes": NUM_CLASSES if a["class_cond"] else None,
        "use_checkpoint": a["use_checkpoint"],
        "num_heads": a["num_heads"],
        "num_head_channels": a["num_head_channels"],
        "num_heads_upsample": a["num_heads_upsample"],
        "use_scale_shift_norm": a["use_scale_shift_norm"],
        "resblock_updown": a["resblock_updown"],
        "use_fp16": a["use_fp16"],
    }


def _classifier_kwargs(a: Mapping[str, Any], flavor: str) -> dict[str, Any]:
    size = a["image_size"]
    kwargs = {
        "image_size": size,
        "in_channels": a.get("in_channels", 3),
        "model_channels": a["classifier_width"],
        "out_channels": a.get("classifier_out_channel", a.get("num_classes", NUM_CLASSES)),
        "num_res_blocks": a["classifier_depth"],
        "attention_resolutions": _ds(a["classifier_attention_resolutions"], size, "classifier_attention_resolutions"),
        "channel_mult": _channel_mult(a, flavor),
        "use_fp16": a["classifier_use_fp16"],
        "num_head_channels": a.get("classifier_num_head_channels", 64),
        "use_scale_shift_norm": a["classifier_use_scale_shift_norm"],
        "resblock_updown": a["classifier_resblock_updown"],
        "pool": a["classifier_pool"],
    }
    if flavor == "ed-dpm":
        kwargs["dropout"] = a["dropout"]
    return kwargs


def parse_flags(
    flags: str | Sequence[str], *, kind: str | None = None, flavor: str = "guided-diffusion"
) -> ModelConfig:
    """Parse a reference flag string (``MODEL_FLAGS``, ``CLASSIFIER_FLAGS``, ``SAMPLE_FLAGS`` …).

    ``kind`` is guessed when not given (:func:`guess_kind`). Flags that belong to another kind
    or to the sampling scripts are kept in ``extra``; unknown flags raise :class:`FlagError`.
    """
    if flavor not in FLAVORS:
        raise FlagError(f"flavor must be one of {FLAVORS}, got {flavor!r}")
    raw = tokenize(flags)
    kind = kind or guess_kind(list(raw))
    if kind not in KINDS:
        raise FlagError(f"kind must be one of {KINDS}, got {kind!r}")
    defaults = defaults_for(kind, flavor)
    known_elsewhere = {
        **MODEL_DEFAULTS, **DIFFUSION_DEFAULTS, **SR_DEFAULTS, **CLASSIFIER_DEFAULTS,
        **ED_CLASSIFIER_EXTRA, **ED_MODEL_EXTRA, **SCRIPT_DEFAULTS, **EXTENSION_DEFAULTS,
    }
    args, extra = dict(defaults), {}
    extensions = {**EXTENSION_DEFAULTS, "channel_mult": ""} if kind != "superres" else {}
    if kind == "classifier":  # ED-DPM's flag, honoured in every flavour (a narrow classifier needs fewer than 64)
        extensions["classifier_num_head_channels"] = ED_CLASSIFIER_EXTRA["classifier_num_head_channels"]
    for name, value in raw.items():
        if name in defaults:
            args[name] = _convert(name, value, defaults[name])
        elif name in extensions:
            args[name] = _convert(name, value, extensions[name])
        elif name in known_elsewhere:
            extra[name] = _convert(name, value, known_elsewhere[name])
        else:
            close = difflib.get_close_matches(name, known_elsewhere, n=1)
            raise FlagError(f"unknown flag --{name}" + (f" (did you mean --{close[0]}?)" if close else "")
                            + f"; known flags: {', '.join(sorted(known_elsewhere))}")

    if kind == "unet":
        kwargs, fp16 = _unet_kwargs(args, flavor), args["use_fp16"]
    elif kind == "superres":
        kwargs, fp16 = _superres_kwargs(args), args["use_fp16"]
    else:
        kwargs, fp16 = _classifier_kwargs(args, flavor), args["classifier_use_fp16"]
    merged = {**DIFFUSION_DEFAULTS, **extra, **args}
    if merged["noise_schedule"] not in ("linear", "cosine"):
        raise FlagError(f"--noise_schedule must be linear or cosine, got {merged['noise_schedule']!r}")
    if merged["diffusion_steps"] < 1:
        raise FlagError(f"--diffusion_steps must be at least 1, got {merged['diffusion_steps']}")
    diffusion = DiffusionSettings(
        steps=merged["diffusion_steps"],
        schedule=merged["noise_schedule"],
        learn_sigma=merged["learn_sigma"],
        respacing=merged["timestep_respacing"],
    )
    return ModelConfig(kind=kind, kwargs=kwargs, diffusion=diffusion, fp16=fp16, flavor=flavor, args=args, extra=extra)
