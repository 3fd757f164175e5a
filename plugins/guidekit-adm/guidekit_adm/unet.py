"""ADM ``UNetModel`` and ``SuperResModel`` (notes §1.5-1.6), with the reference constructor API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionBlock
from .blocks import Downsample, ResBlock, TimestepEmbedSequential, Upsample
from .errors import LabelError
from .nn import conv_nd, linear, normalization, timestep_embedding, zero_module


class DownPath(NamedTuple):
    """The encoder half shared by the UNet and the classifier."""

    input_blocks: nn.ModuleList
    middle_block: TimestepEmbedSequential
    input_block_chans: list[int]  # channel count after every input block (the skip stack)
    ch: int  # channels after the middle block
    ds: int  # downsample factor after the last level


def check_architecture(
    model_channels: int,
    num_res_blocks: int,
    attention_resolutions: Iterable[int],
    dropout: float,
    channel_mult: Sequence[float],
    dims: int,
) -> tuple[int, ...]:
    """Validate the shared architecture arguments; return the attention downsample factors."""
    if isinstance(attention_resolutions, str):
        raise ValueError(
            "attention_resolutions must be downsample factors such as (8, 16, 32), not a string; "
            "use guidekit_adm.parse_flags for reference flag strings like '32,16,8'"
        )
    if model_channels < 1:
        raise ValueError(f"model_channels must be positive, got {model_channels}")
    if num_res_blocks < 1:
        raise ValueError(f"num_res_blocks must be at least 1, got {num_res_blocks}")
    if len(channel_mult) == 0 or any(m <= 0 for m in channel_mult):
        raise ValueError(f"channel_mult must be a non-empty sequence of positive numbers, got {channel_mult}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if dims not in (1, 2, 3):
        raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
    return tuple(int(ds) for ds in attention_resolutions)


def build_down_path(
    *,
    in_channels: int,
    model_channels: int,
    num_res_blocks: int,
    attention_resolutions: tuple[int, ...],
    dropout: float,
    channel_mult: Sequence[float],
    conv_resample: bool,
    dims: int,
    use_checkpoint: bool,
    num_heads: int,
    num_head_channels: int,
    use_scale_shift_norm: bool,
    resblock_updown: bool,
    use_new_attention_order: bool,
) -> DownPath:
    """Build ``input_blocks`` and ``middle_block`` exactly as the reference does."""
    emb_dim = model_channels * 4

    def resblock(ch: int, out: int | None = None, **updown: bool) -> ResBlock:
        return ResBlock(
            ch, emb_dim, dropout, out_channels=out, dims=dims, use_checkpoint=use_checkpoint,
            use_scale_shift_norm=use_scale_shift_norm, **updown,
        )

    def attention(ch: int) -> AttentionBlock:
        return AttentionBlock(
            ch, num_heads=num_heads, num_head_channels=num_head_channels,
            use_checkpoint=use_checkpoint, use_new_attention_order=use_new_attention_order,
        )

    ch = int(channel_mult[0] * model_channels)
    input_blocks = nn.ModuleList([TimestepEmbedSequential(conv_nd(dims, in_channels, ch, 3, padding=1))])
    chans, ds = [ch], 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            layers: list[nn.Module] = [resblock(ch, int(mult * model_channels))]
            ch = int(mult * model_channels)
            if ds in attention_resolutions:
                layers.append(attention(ch))
            input_blocks.append(TimestepEmbedSequential(*layers))
            chans.append(ch)
        if level != len(channel_mult) - 1:
            down = resblock(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample, dims, ch)
            input_blocks.append(TimestepEmbedSequential(down))
            chans.append(ch)
            ds *= 2
    middle_block = TimestepEmbedSequential(resblock(ch), attention(ch), resblock(ch))
    return DownPath(input_blocks, middle_block, chans, ch, ds)


def init_torso(
    model: nn.Module, *, image_size: int, in_channels: int, model_channels: int, out_channels: int,
    num_res_blocks: int, attention_resolutions: Iterable[int], dropout: float, channel_mult: Sequence[float],
    conv_resample: bool, dims: int, use_checkpoint: bool, use_fp16: bool, num_heads: int, num_head_channels: int,
    num_heads_upsample: int, use_scale_shift_norm: bool, resblock_updown: bool, use_new_attention_order: bool,
    num_classes: int | None = None, check: Callable[[], None] | None = None,
) -> DownPath:
    """The constructor part shared by :class:`UNetModel` and ``EncoderUNetModel``.

    Validates the shared arguments and ``num_classes``, then runs ``check`` (the model's own
    argument checks); stores the shared attributes on ``model``; registers ``model.time_embed``
    and, when ``num_classes`` is given, ``model.label_emb``; builds and returns the encoder half,
    unregistered, for the caller to assign. This order is the reference's: it fixes the
    state-dict key order and what a seeded initialisation draws.
    """
    attention_ds = check_architecture(
        model_channels, num_res_blocks, attention_resolutions, dropout, channel_mult, dims
    )
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be positive or None, got {num_classes}")
    if check is not None:
        check()
    model.image_size = image_size
    model.in_channels = in_channels
    model.model_channels = model_channels
    model.out_channels = out_channels
    model.num_res_blocks = num_res_blocks
    model.attention_resolutions = attention_ds
    model.dropout = dropout
    model.channel_mult = tuple(channel_mult)
    model.conv_resample = conv_resample
    model.use_checkpoint = use_checkpoint
    model.use_fp16 = use_fp16
    model.dtype = torch.float16 if use_fp16 else torch.float32
    model.num_heads = num_heads
    model.num_head_channels = num_head_channels
    model.num_heads_upsample = num_heads if num_heads_upsample == -1 else num_heads_upsample

    emb_dim = model_channels * 4
    model.time_embed = nn.Sequential(linear(model_channels, emb_dim), nn.SiLU(), linear(emb_dim, emb_dim))
    if num_classes is not None:
        model.label_emb = nn.Embedding(num_classes, emb_dim)
    return build_down_path(
        in_channels=in_channels, model_channels=model_channels, num_res_blocks=num_res_blocks,
        attention_resolutions=attention_ds, dropout=dropout, channel_mult=channel_mult,
        conv_resample=conv_resample, dims=dims, use_checkpoint=use_checkpoint, num_heads=num_heads,
        num_head_channels=num_head_channels, use_scale_shift_norm=use_scale_shift_norm,
        resblock_updown=resblock_updown, use_new_attention_order=use_new_attention_order,
    )


def as_timesteps(timesteps: torch.Tensor | float, batch: int, device: torch.device) -> torch.Tensor:
    """Return timesteps as a (B,) tensor, broadcasting a scalar over the batch."""
    t = torch.as_tensor(timesteps, device=device)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"timesteps must be a scalar or of shape ({batch},), got {tuple(t.shape)}")
    return t


class UNetModel(nn.Module):
    """The ADM UNet with timestep embedding, attention and optional class conditioning.

    Arguments, defaults and state-dict keys match guided-diffusion's ``UNetModel``.
    ``attention_resolutions`` are downsample factors. ``use_fp16`` only sets :attr:`dtype`
    (the torso input dtype); call :func:`guidekit_adm.convert_to_fp16` to convert the weights.
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
        num_classes: int | None = None,
        use_checkpoint: bool = False,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
    ) -> None:
        super().__init__()
        down = init_torso(
            self, image_size=image_size, in_channels=in_channels, model_channels=model_channels,
            out_channels=out_channels, num_res_blocks=num_res_blocks, attention_resolutions=attention_resolutions,
            dropout=dropout, channel_mult=channel_mult, conv_resample=conv_resample, dims=dims,
            use_checkpoint=use_checkpoint, use_fp16=use_fp16, num_heads=num_heads,
            num_head_channels=num_head_channels, num_heads_upsample=num_heads_upsample,
            use_scale_shift_norm=use_scale_shift_norm, resblock_updown=resblock_updown,
            use_new_attention_order=use_new_attention_order, num_classes=num_classes,
        )
        self.num_classes = num_classes
        emb_dim = model_channels * 4
        self.input_blocks, self.middle_block = down.input_blocks, down.middle_block
        chans, ch, ds = list(down.input_block_chans), down.ch, down.ds

        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                ich = chans.pop()
                width = int(model_channels * mult)
                layers: list[nn.Module] = [
                    ResBlock(
                        ch + ich, emb_dim, dropout, out_channels=width, dims=dims,
                        use_checkpoint=use_checkpoint, use_scale_shift_norm=use_scale_shift_norm,
                    )
                ]
                ch = width
                if ds in self.attention_resolutions:
                    layers.append(
                        AttentionBlock(
                            ch, num_heads=self.num_heads_upsample, num_head_channels=num_head_channels,
                            use_checkpoint=use_checkpoint, use_new_attention_order=use_new_attention_order,
                        )
                    )
                if level and i == num_res_blocks:
                    layers.append(
                        ResBlock(
                            ch, emb_dim, dropout, out_channels=ch, dims=dims, use_checkpoint=use_checkpoint,
                            use_scale_shift_norm=use_scale_shift_norm, up=True,
                        )
                        if resblock_updown
                        else Upsample(ch, conv_resample, dims=dims, out_channels=ch)
                    )
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        first = int(channel_mult[0] * model_channels)
        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(conv_nd(dims, first, out_channels, 3, padding=1))
        )

    @property
    def learn_sigma(self) -> bool:
        """True when the output holds eps ‖ variance values (twice the image channels)."""
        return self.out_channels == 2 * self.image_channels

    @property
    def image_channels(self) -> int:
        """Channels of the image being denoised (``x``)."""
        return self.in_channels

    def embed(self, timesteps: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The vector every ResBlock receives: ``time_embed(sinusoid(t)) + label_emb(y)``."""
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y)
        return emb

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor | float, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict ``eps`` (‖ variance values when ``learn_sigma``) for ``x`` at ``timesteps``."""
        self._check_labels(x, y)
        emb = self.embed(as_timesteps(timesteps, x.shape[0], x.device), y)
        skips = []
        h = x.type(self.dtype)
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h.type(x.dtype))

    def _check_labels(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if self.num_classes is None:
            if y is not None:
                raise LabelError("this model is unconditional (num_classes=None); do not pass y")
            return
        if y is None:
            raise LabelError(f"this model is class-conditional ({self.num_classes} classes); pass y")
        if y.shape != (x.shape[0],):
            raise LabelError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise LabelError(f"y must hold integer class indices, got dtype {y.dtype}")


class SuperResModel(UNetModel):
    """A UNet that also sees a bilinearly upsampled low-resolution image (channels doubled)."""

    def __init__(self, image_size: int, in_channels: int, *args, **kwargs) -> None:
        super().__init__(image_size, in_channels * 2, *args, **kwargs)

    @property
    def image_channels(self) -> int:
        return self.in_channels // 2

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor | float,
        low_res: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoise ``x`` conditioned on ``low_res`` (upsampled to x's size, concatenated after x)."""
        if low_res is None:
            raise ValueError("SuperResModel needs low_res; wrap it with guidekit_adm.with_low_res(model, low_res)")
        if low_res.shape[0] != x.shape[0]:
            raise ValueError(f"low_res has batch {low_res.shape[0]} but x has batch {x.shape[0]}")
        upsampled = F.interpolate(low_res, x.shape[2:], mode="bilinear")
        return super().forward(torch.cat([x, upsampled], dim=1), timesteps, y)
