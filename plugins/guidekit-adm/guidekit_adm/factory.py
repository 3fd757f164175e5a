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


def build(kind: str, kwargs: dict[str, Any], device: torch.device | str | None = None) -> nn.Module:
    """Construct the class for ``kind`` with ``kwargs``, optionally directly on ``device``."""
    cls = CLASSES[kind]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    if cls is SuperResModel:
        accepted |= set(inspect.signature(UNetModel.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"{cls.__name__} does not accept {unknown}; accepted: {', '.join(sorted(accepted))}")
    if device is None:
        return cls(**kwargs)
    with torch.device(device):
        return cls(**kwargs)


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
    return convert_to_fp16(model) if use_fp16 else model
