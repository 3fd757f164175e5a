"""Turning a ``--device`` string into a torch device, with errors that say what to pass."""

from __future__ import annotations

import os

import torch

from .errors import InvalidParameterError


def resolve_device(name: str, what: str = "--device") -> torch.device:
    """``auto`` (CUDA if present, ``cuda:$LOCAL_RANK`` under torchrun, else CPU), or any torch device string.

    ``what`` names the option or argument in error messages.
    """
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if "LOCAL_RANK" in os.environ else "cuda")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidParameterError(f"{what} {name!r} is not a torch device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"{what} {name}: CUDA is not available here; use {what} cpu (or auto)")
    return device


def as_device(value: str | int | torch.device, what: str = "device", *, allow_meta: bool = False) -> torch.device:
    """A device given as a string (see :func:`resolve_device`), a ``torch.device`` or a CUDA index, checked
    to exist here; the ``meta`` device (no data) is refused unless ``allow_meta`` (building without memory)."""
    if isinstance(value, str):
        device = resolve_device(value, what=what)
    else:
        try:
            device = torch.device(value)
        except (RuntimeError, TypeError) as exc:
            raise InvalidParameterError(f"{what} {value!r} cannot be used here ({exc}); use 'cpu', 'cuda', "
                                        "'cuda:N' or 'auto'") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidParameterError(f"{what} {value!r}: CUDA is not available here; use 'cpu' (or 'auto')")
    if device.type == "meta" and not allow_meta:
        raise InvalidParameterError(f"{what} 'meta' holds no data, so nothing can be computed on it; use 'cpu' or 'cuda'")
    return device
