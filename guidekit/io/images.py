"""Model output in [-1, 1] to uint8 images, as the ADM sampling scripts convert them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from guidekit.errors import InvalidParameterError


def to_uint8(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Model output in [-1, 1], NCHW (or CHW) → uint8 NHWC (or HWC).

    ``((x + 1) * 127.5).clamp(0, 255).to(torch.uint8)``: truncates, as the ADM sampling scripts do
    (FID parity with published numbers needs the same conversion).
    """
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        raise InvalidParameterError(f"to_uint8 expects floating-point images in [-1, 1], got dtype {t.dtype}")
    if t.ndim not in (3, 4):
        raise InvalidParameterError(f"to_uint8 expects NCHW or CHW images, got shape {tuple(t.shape)}")
    if t.shape[-3] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
        raise InvalidParameterError(f"to_uint8 expects channels first (N×C×H×W), got shape {tuple(t.shape)}, which "
                                    "looks like N×H×W×C: pass x.permute(0, 3, 1, 2)")
    if not bool(torch.isfinite(t).all()):
        raise InvalidParameterError("the images contain NaN or inf, which have no pixel value; "
                                    "check the sampling run that produced them (check_finite=True)")
    out = ((t + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    return out.permute(1, 2, 0).contiguous() if out.ndim == 3 else out.permute(0, 2, 3, 1).contiguous()


def _images_uint8_nhwc(images: Any, what: str = "images") -> np.ndarray:
    """uint8 NHWC stays as it is; floating point is model output (NCHW in [-1, 1]) → :func:`to_uint8`."""
    if isinstance(images, np.ndarray) and np.issubdtype(images.dtype, np.floating):
        images = torch.from_numpy(images)
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim == 4 and images.shape[1] not in (1, 3, 4):
            raise InvalidParameterError(
                f"floating-point {what} must be model output N×C×H×W in [-1, 1], got shape {tuple(images.shape)}"
                + (" (that looks like N×H×W×C: pass x.permute(0, 3, 1, 2), or uint8 N×H×W×C)"
                   if images.shape[-1] in (1, 3, 4) else "")
            )
        images = to_uint8(images)
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8:
        raise InvalidParameterError(
            f"{what} must be uint8 N×H×W×C, or floating point N×C×H×W in [-1, 1]; got dtype {arr.dtype}"
        )
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise InvalidParameterError(f"{what} must be uint8 N×H×W×C with C in (1, 3, 4), got shape {arr.shape}")
    return arr
