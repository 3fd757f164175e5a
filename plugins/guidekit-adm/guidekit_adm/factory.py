"""Build ADM networks from a release name, a reference flag string or a :class:`ModelConfig`."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from .encoder import EncoderUNetModel
from .errors import ConfigError
from .flags import ModelConfig, parse_flags
from .fp16 import convert_to_fp16
from .nn import set_silu
from .releases import release
from .unet import SuperResModel, UNetModel

#: kind → network class
CLASSES: dict[str, type[nn.Module]] = {
    "unet": UNetModel,
    "superres": SuperResModel,
    "classifier": EncoderUNetModel,
}


def resolve_config(spec: str | ModelConfig) -> ModelConfig:
    """A :class:`ModelConfig` from a release name, a flag string (starts with ``--``) or a config."""
    if isinstance(spec, ModelConfig):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"expected a release name, a flag string or a ModelConfig, got {type(spec).__name__}")
    if spec.lstrip().startswith("--"):
        return parse_flags(spec)
    return release(spec)


def as_device(device: torch.device | str) -> torch.device:
    """``torch.device(device)``, with an error naming the accepted spellings."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device ({exc}); use 'cpu', 'cuda' or 'cuda:N'") from None


def build(kind: str, kwargs: dict[str, Any], device: torch.device | str | None = None) -> nn.Module:
    """Construct the class for ``kind`` with ``kwargs``, optionally directly on ``device``."""
    cls = CLASSES[kind]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    if cls is SuperResModel:
        accepted |= set(inspect.signature(UNetModel.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        hint = (". To load weights use guidekit_adm.load_checkpoint(name, path)" if "path" in unknown else "")
        raise ConfigError(f"{cls.__name__} does not accept {unknown}; accepted: {', '.join(sorted(accepted))}{hint}")
    try:
        if device is None:
            return cls(**kwargs)
        with as_device(device):
            return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot build {cls.__name__} from these settings: {exc}") from exc


def model_card(config: ModelConfig) -> dict[str, Any]:
    """``{"release": name or None, "diffusion": kwargs of GaussianDiffusion.create}`` for a built network.

    ``guidekit.GaussianDiffusion.from_model(model)`` reads it, so a network brings its own schedule.
    """
    d = config.diffusion
    return {
        "release": getattr(config, "name", None),
        "diffusion": {"steps": d.steps, "schedule": d.schedule, "learn_sigma": d.learn_sigma},
    }


def create_model(
    name_or_flags: str | ModelConfig,
    *,
    device: torch.device | str | None = None,
    use_fp16: bool = False,
    silu: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the exact architecture of a released checkpoint (random weights, train mode).

    ``overrides`` replace constructor kwargs (e.g. ``dropout=0``). ``device="meta"`` builds
    without allocating memory. ``use_fp16=True`` applies :func:`convert_to_fp16`, the reference's
    torso-conv policy; whether the README samples a release in fp16 is ``release(name).fp16``.
    ``silu`` picks the SiLU arithmetic (:func:`set_silu`); by default the config's flavour, so
    networks built from ED-DPM flags (``parse_flags(..., flavor="ed-dpm")``) compute x·sigmoid(x).
    """
    config = resolve_config(name_or_flags)
    kwargs = {**config.kwargs, **overrides, "use_fp16": False}
    model = set_silu(build(config.kind, kwargs, device), silu if silu is not None else config.flavor)
    model.card = model_card(config)
    return convert_to_fp16(model) if use_fp16 else model
