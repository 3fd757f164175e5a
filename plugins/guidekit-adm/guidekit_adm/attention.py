"""Self-attention over spatial positions and the classifier's attention pool (notes §1.4, §1.7)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .nn import conv_nd, normalization, zero_module


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention of (N, d, T) queries over (N, d, S) keys/values; softmax over keys in float32."""
    scale = 1.0 / (q.shape[1] ** 0.25)  # d^-1/4 on q and k each: 1/sqrt(d) overall, fp16-safe
    weight = torch.einsum("nct,ncs->nts", q * scale, k * scale)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return torch.einsum("nts,ncs->nct", weight, v)


class _QKVAttentionBase(nn.Module):
    """Attention on a (B, 3·H·d, T) qkv tensor; subclasses say how q, k and v are laid out."""

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads

    def split(self, qkv: torch.Tensor, ch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v, each (B·H, d, T)."""
        raise NotImplementedError

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        batch, width, length = qkv.shape
        if width % (3 * self.n_heads):
            raise ValueError(f"qkv width {width} is not divisible by 3 * n_heads = {3 * self.n_heads}")
        q, k, v = self.split(qkv, width // (3 * self.n_heads))
        return _attend(q, k, v).reshape(batch, -1, length)


class QKVAttentionLegacy(_QKVAttentionBase):
    """Head-first layout: per head [q | k | v]."""

    def split(self, qkv: torch.Tensor, ch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, _, length = qkv.shape
        return qkv.reshape(batch * self.n_heads, ch * 3, length).split(ch, dim=1)


class QKVAttention(_QKVAttentionBase):
    """q/k/v-first layout: [q heads | k heads | v heads]."""

    def split(self, qkv: torch.Tensor, ch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, _, length = qkv.shape
        shape = (batch * self.n_heads, ch, length)
        q, k, v = qkv.chunk(3, dim=1)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)


def resolve_heads(channels: int, num_heads: int, num_head_channels: int) -> int:
    """Head count: ``channels // num_head_channels`` unless that is -1, else ``num_heads``."""
    if num_head_channels == -1:
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"channels {channels} are not divisible by num_heads {num_heads}")
        return num_heads
    if num_head_channels < 1 or channels % num_head_channels:
        raise ValueError(f"channels {channels} are not divisible by num_head_channels {num_head_channels}")
    return channels // num_head_channels


class AttentionBlock(nn.Module):
    """Residual self-attention over all spatial positions: ``x + proj_out(attn(qkv(norm(x))))``."""

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_checkpoint: bool = False,
        use_new_attention_order: bool = False,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_heads = resolve_heads(channels, num_heads, num_head_channels)
        self.use_checkpoint = use_checkpoint
        self.norm = normalization(channels)
        self.qkv = conv_nd(1, channels, channels * 3, 1)
        self.attention = (QKVAttention if use_new_attention_order else QKVAttentionLegacy)(self.num_heads)
        self.proj_out = zero_module(conv_nd(1, channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, *spatial = x.shape
        x = x.reshape(batch, channels, -1)
        h = self.proj_out(self.attention(self.qkv(self.norm(x))))
        return (x + h).reshape(batch, channels, *spatial)


class AttentionPool2d(nn.Module):
    """Attention pooling: the spatial mean is prepended as token 0 and token 0 is returned.

    ``positional_embedding`` is channels-first, shape ``(C, S*S + 1)``; attention always uses the
    new (q/k/v-first) layout with ``C // num_heads_channels`` heads.
    """

    def __init__(
        self, spacial_dim: int, embed_dim: int, num_heads_channels: int, output_dim: int | None = None
    ) -> None:
        super().__init__()
        if num_heads_channels < 1 or embed_dim % num_heads_channels:
            raise ValueError(
                f"embed_dim {embed_dim} is not divisible by num_heads_channels {num_heads_channels}"
            )
        self.positional_embedding = nn.Parameter(
            torch.randn(embed_dim, spacial_dim**2 + 1) / embed_dim**0.5
        )
        self.qkv_proj = conv_nd(1, embed_dim, 3 * embed_dim, 1)
        self.c_proj = conv_nd(1, embed_dim, output_dim or embed_dim, 1)
        self.num_heads = embed_dim // num_heads_channels
        self.attention = QKVAttention(self.num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, *_ = x.shape
        x = x.reshape(batch, channels, -1)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1)
        x = x + self.positional_embedding[None].to(x.dtype)
        x = self.c_proj(self.attention(self.qkv_proj(x)))
        return x[:, :, 0]
