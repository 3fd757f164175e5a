"""Batches for the training loops: seeded draws with replacement from in-memory tensors."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from ..errors import InvalidParameterError
from ..identity import state_sha256
from .config import TrainConfig


def check_data(images: torch.Tensor, labels: torch.Tensor | None, model: nn.Module | None = None) -> None:
    """Images a float (B, C, H, W) tensor in [-1, 1] that fits ``model`` (its ``in_channels``/``image_channels``
    and ``image_size`` when it has them), one label per image."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        dtype = getattr(images, "dtype", type(images).__name__)
        raise InvalidParameterError(f"images must be a floating-point torch tensor (B, C, H, W) in [-1, 1], got "
                                    f"{type(images).__name__} of {dtype}; convert with torch.as_tensor(x).float() "
                                    "(uint8 pixels: x / 127.5 - 1)")
    if images.ndim != 4:
        raise InvalidParameterError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}"
                                    + ("; add the channel axis with images.unsqueeze(1)" if images.ndim == 3 else ""))
    channels = None if model is None else next((getattr(model, a) for a in ("in_channels", "image_channels")
                                                if isinstance(getattr(model, a, None), int)), None)
    if images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4) or (
            channels is not None and images.shape[1] != channels and images.shape[-1] == channels):
        raise InvalidParameterError(f"images of shape {tuple(images.shape)} look channels-last (B, H, W, C); the "
                                    "networks take (B, C, H, W): pass images.permute(0, 3, 1, 2)")
    if channels is not None and images.shape[1] != channels:
        raise InvalidParameterError(f"the network takes {channels}-channel images but the images have {images.shape[1]} "
                                    f"channels (shape {tuple(images.shape)}); give images of its channels, or build it "
                                    f"with {images.shape[1]} input channels")
    size = getattr(model, "image_size", None) if model is not None else None
    if isinstance(size, int) and tuple(images.shape[-2:]) != (size, size):
        raise InvalidParameterError(f"the network takes {size}×{size} images but the images are "
                                    f"{images.shape[-2]}×{images.shape[-1]}; resize them, or build the network for "
                                    "their size")
    if labels is not None and len(images) != len(labels):
        raise InvalidParameterError(f"{len(images)} images but {len(labels)} labels: give one label per image")
    if len(images) == 0:
        raise InvalidParameterError("no training images given")
    if not bool(torch.isfinite(images).all()):
        raise InvalidParameterError("the training images contain NaN or inf; clean or drop those images")
    if float(images.min()) >= 0 and float(images.max()) > 10:  # pixel values 0..255, not the [-1, 1] of the process
        raise InvalidParameterError(f"images range over [{float(images.min()):g}, {float(images.max()):g}], which looks "
                                    "like pixel values; the diffusion process expects [-1, 1]: use x / 127.5 - 1")


def fingerprint(images: torch.Tensor, labels: torch.Tensor | None, sampled: int = 256) -> dict[str, Any]:
    """What identifies a training set in a checkpoint: its shape, a sha256 of up to ``sampled`` evenly spaced
    images and all labels (``"sha256"``, kept for checkpoints of older versions), and the sha256 of all
    images and labels (``"content_sha256"``): another data set, or another order, gives another digest."""
    idx = torch.linspace(0, len(images) - 1, min(len(images), sampled)).round().long()
    digest = hashlib.sha256(images[idx.to(images.device)].detach().float().cpu().contiguous().numpy().tobytes())
    if labels is not None:
        digest.update(torch.as_tensor(labels).detach().long().cpu().contiguous().numpy().tobytes())
    full = state_sha256([images.detach().float(), None if labels is None else torch.as_tensor(labels).long()])
    return {"shape": list(images.shape), "labels": labels is not None, "sha256": digest.hexdigest()[:16],
            "content_sha256": full}


def check_setup(model: nn.Module, config: TrainConfig, what: str) -> None:
    """The config is a :class:`TrainConfig` and ``model`` a module with parameters to train."""
    if not isinstance(config, TrainConfig):
        raise InvalidParameterError(f"config must be a guidekit.TrainConfig, got {type(config).__name__}")
    if not isinstance(model, nn.Module) or next(iter(model.parameters()), None) is None:
        raise InvalidParameterError(f"the {what} must be a torch.nn.Module with trainable parameters")


def draw_batch(gen: torch.Generator, images: torch.Tensor, labels: torch.Tensor | None, size: int) -> dict[str, torch.Tensor]:
    idx = torch.randint(0, len(images), (size,), generator=gen)
    batch = {"x0": images[idx]}
    if labels is not None:
        batch["y"] = labels[idx]
    return batch
