"""ADM ``EncoderUNetModel``: the noise-aware classifier (notes §1.7)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .attention import AttentionPool2d
from .nn import conv_nd, normalization, timestep_embedding, zero_module
from .unet import as_timesteps, init_torso

POOLS = ("adaptive", "attention", "spatial", "spatial_v2")


class EncoderUNetModel(nn.Module):
    """The UNet's encoder half plus a pooling head; ``forward(x, t)`` returns (B, K) logits.

    Arguments, defaults and state-dict keys match guided-diffusion's ``EncoderUNetModel``.
    Every released classifier uses ``pool="attention"`` (which needs ``num_head_channels``).
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Iterable[int],
        dropout: float = 0,
        channel_mult: Sequence[float] = (1, 2, 4, 8),
        conv_resample: bool = True,
        dims: int = 2,
        use_checkpoint: bool = False,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
        pool: str = "adaptive",
    ) -> None:
        super().__init__()

        def check_pool() -> None:
            if pool not in POOLS:
                raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
            if pool == "attention" and num_head_channels == -1:
                raise ValueError("pool='attention' needs num_head_channels (the released classifiers use 64)")

        down = init_torso(
            self, image_size=image_size, in_channels=in_channels, model_channels=model_channels,
            out_channels=out_channels, num_res_blocks=num_res_blocks, attention_resolutions=attention_resolutions,
            dropout=dropout, channel_mult=channel_mult, conv_resample=conv_resample, dims=dims,
            use_checkpoint=use_checkpoint, use_fp16=use_fp16, num_heads=num_heads,
            num_head_channels=num_head_channels, num_heads_upsample=num_heads_upsample,
            use_scale_shift_norm=use_scale_shift_norm, resblock_updown=resblock_updown,
            use_new_attention_order=use_new_attention_order, check=check_pool,
        )
        self.pool = pool
        self.input_blocks, self.middle_block = down.input_blocks, down.middle_block
        ch = down.ch
        self._feature_size = sum(down.input_block_chans) + ch

        if pool == "adaptive":
            self.out = nn.Sequential(
                normalization(ch), nn.SiLU(), nn.AdaptiveAvgPool2d((1, 1)),
                zero_module(conv_nd(dims, ch, out_channels, 1)), nn.Flatten(),
            )
        elif pool == "attention":
            self.out = nn.Sequential(
                normalization(ch), nn.SiLU(),
                AttentionPool2d(image_size // down.ds, ch, num_head_channels, out_channels),
            )
        elif pool == "spatial":
            self.out = nn.Sequential(
                nn.Linear(self._feature_size, 2048), nn.ReLU(), nn.Linear(2048, out_channels)
            )
        else:  # spatial_v2
            self.out = nn.Sequential(
                nn.Linear(self._feature_size, 2048), normalization(2048), nn.SiLU(),
                nn.Linear(2048, out_channels),
            )

    @property
    def num_outputs(self) -> int:
        """Number of classes K of the (B, K) logits."""
        return self.out_channels

    def extract_features(self, x: torch.Tensor, timesteps: torch.Tensor | float) -> torch.Tensor:
        """What the head receives: the middle-block output (B, C, h, w), or the spatial means (B, F)."""
        emb = self.time_embed(
            timestep_embedding(as_timesteps(timesteps, x.shape[0], x.device), self.model_channels)
        )
        spatial = self.pool.startswith("spatial")
        means = []
        h = x.type(self.dtype)
        for block in self.input_blocks:
            h = block(h, emb)
            if spatial:
                means.append(h.type(x.dtype).mean(dim=(2, 3)))
        h = self.middle_block(h, emb)
        if spatial:
            means.append(h.type(x.dtype).mean(dim=(2, 3)))
            return torch.cat(means, dim=-1)
        return h.type(x.dtype)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Apply the pooling head to :meth:`extract_features` output: (B, K) logits."""
        return self.out(features)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | float) -> torch.Tensor:
        """Class logits (B, K) of noisy images ``x`` at original timesteps ``timesteps``."""
        return self.classify(self.extract_features(x, timesteps))
