"""Primitive layers shared by the ADM networks (notes §1.1)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import ConfigError

#: GroupNorm group count used everywhere in ADM.
GROUPS = 32
#: SiLU arithmetic per code base: guided-diffusion uses ``nn.SiLU``, ED-DPM its own ``x * sigmoid(x)``
SILU_FLAVORS = ("guided-diffusion", "ed-dpm")


class SigmoidSiLU(nn.Module):
    """ED-DPM's SiLU, written ``x * sigmoid(x)``.

    The same function as ``nn.SiLU`` but other float32 rounding: they differ by up to one ulp
    (9.5e-7 near x = ±8) on about a fifth of the inputs, which moves a UNet's output by ~3e-7.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def set_silu(model: nn.Module, flavor: str) -> nn.Module:
    """Use the SiLU arithmetic of ``flavor`` (:data:`SILU_FLAVORS`) everywhere in ``model``, in place.

    ``"ed-dpm"`` swaps every ``nn.SiLU`` for :class:`SigmoidSiLU`, ``"guided-diffusion"`` swaps back.
    State dicts are unaffected (SiLU has no parameters). Returns ``model``.
    """
    if flavor not in SILU_FLAVORS:
        raise ConfigError(f"silu must be one of {SILU_FLAVORS}, got {flavor!r}")
    make = SigmoidSiLU if flavor == "ed-dpm" else nn.SiLU
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.SiLU, SigmoidSiLU)) and type(child) is not make:
                setattr(parent, name, make())
    return model


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that always computes in float32 and returns the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    """The ADM normalisation layer: ``GroupNorm32(32, channels)``, eps 1e-5, affine."""
    if channels % GROUPS != 0:
        raise ValueError(
            f"GroupNorm needs a channel count divisible by {GROUPS}, got {channels}; "
            "choose model_channels and channel_mult so that every level width is a multiple of 32"
        )
    return GroupNorm32(GROUPS, channels)


def conv_nd(dims: int, *args, **kwargs) -> nn.Module:
    """A 1-, 2- or 3-D convolution with PyTorch's default arguments."""
    convs = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
    if dims not in convs:
        raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
    return convs[dims](*args, **kwargs)


def avg_pool_nd(dims: int, *args, **kwargs) -> nn.Module:
    """A 1-, 2- or 3-D average pool."""
    pools = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
    if dims not in pools:
        raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
    return pools[dims](*args, **kwargs)


def linear(*args, **kwargs) -> nn.Linear:
    """A plain ``nn.Linear`` (bias on)."""
    return nn.Linear(*args, **kwargs)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero every parameter of ``module`` in place and return it."""
    for p in module.parameters():
        p.detach().zero_()
    return module


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding ``[cos | sin]`` of (possibly fractional) timesteps.

    Frequencies are ``exp(-ln(max_period) * i / half)`` for ``i < half = dim // 2``;
    an odd ``dim`` gets one zero column appended. Returns a float32 ``(N, dim)`` tensor.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding
