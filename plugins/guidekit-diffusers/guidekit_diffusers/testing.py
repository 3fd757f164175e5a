"""Tiny diffusers models for tests and examples: built from a config with seeded random weights, no hub."""

from __future__ import annotations

from typing import Any

import torch

#: real classes of :func:`tiny_unet` with ``num_classes=K + 1``; label K is then its null label
K = 4


def tiny_unet(num_classes: int | None = None, out_channels: int = 1, seed: int = 0) -> Any:
    """A 1-channel 8x8 ``diffusers.UNet2DModel`` (about 40k parameters) in eval mode; ``num_classes`` adds
    ``num_class_embeds`` (class-conditional through ``class_labels``)."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=out_channels, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
                       num_class_embeds=num_classes).eval()


class TinyClassifier(torch.nn.Module):
    """A noise-aware ``classifier(x_t, t) -> logits`` over K classes for 1x8x8 images, seeded random weights."""

    def __init__(self, seed: int = 7) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * 64 + 1, K)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x)).flatten(1)
        return self.head(torch.cat([h, t.float().view(-1, 1) / 1000], dim=1))
