"""Batches for the training loops: seeded draws with replacement from in-memory tensors."""

from __future__ import annotations

import torch

from ..errors import InvalidParameterError


def check_data(images: torch.Tensor, labels: torch.Tensor | None) -> None:
    if labels is not None and len(images) != len(labels):
        raise InvalidParameterError(f"{len(images)} images but {len(labels)} labels: give one label per image")
    if len(images) == 0:
        raise InvalidParameterError("no training images given")
    if not torch.as_tensor(images).dtype.is_floating_point:
        raise InvalidParameterError(f"images must be floats in [-1, 1], got dtype {images.dtype}; use x / 127.5 - 1")


def draw_batch(gen: torch.Generator, images: torch.Tensor, labels: torch.Tensor | None, size: int) -> dict[str, torch.Tensor]:
    idx = torch.randint(0, len(images), (size,), generator=gen)
    batch = {"x0": images[idx]}
    if labels is not None:
        batch["y"] = labels[idx]
    return batch
