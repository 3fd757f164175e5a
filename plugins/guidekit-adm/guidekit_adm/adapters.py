"""Adapters that give ADM networks the call signature guidekit's sampler uses."""

from __future__ import annotations

import torch
from torch import nn

from .unet import SuperResModel


class LowResConditioned(nn.Module):
    """A :class:`SuperResModel` bound to a fixed ``low_res`` batch: ``model(x, t, y=None)``.

    Exposes ``num_classes``, ``out_channels`` and ``learn_sigma`` of the wrapped model so the
    sampler passes ``y`` only to class-conditional upsamplers.
    """

    def __init__(self, model: SuperResModel, low_res: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(model, SuperResModel):
            raise TypeError(f"with_low_res expects a SuperResModel, got {type(model).__name__}")
        if low_res.dim() != 4 or low_res.shape[1] != model.image_channels:
            raise ValueError(
                f"low_res must be (B, {model.image_channels}, h, w) in [-1, 1], got {tuple(low_res.shape)}"
            )
        self.model = model
        self.register_buffer("low_res", low_res, persistent=False)

    @property
    def num_classes(self) -> int | None:
        return self.model.num_classes

    @property
    def out_channels(self) -> int:
        return self.model.out_channels

    @property
    def learn_sigma(self) -> bool:
        return self.model.learn_sigma

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, timesteps, low_res=self.low_res.to(x.dtype), y=y)


def with_low_res(model: SuperResModel, low_res: torch.Tensor) -> LowResConditioned:
    """Bind ``low_res`` (B, C, h, w), scaled to [-1, 1], to an upsampler for sampling."""
    return LowResConditioned(model, low_res)
