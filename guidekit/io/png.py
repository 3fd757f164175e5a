"""PNG output without Pillow: encode one image, tile a batch into a grid, save it atomically."""

from __future__ import annotations

import math
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from guidekit.checks import is_integer
from guidekit.errors import InvalidParameterError

from .atomic import atomic_write
from .images import _images_uint8_nhwc

_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA


def encode_png(image: np.ndarray) -> bytes:
    """Encode a uint8 H×W×C (C in 1..4) or H×W image as PNG bytes (8-bit, no filtering)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in _PNG_COLOR_TYPE:
        raise InvalidParameterError(f"encode_png needs uint8 H×W×C with C in 1..4, got {img.dtype} {img.shape}")
    h, w, c = img.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * c)], axis=1)  # filter type 0
    header = struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOR_TYPE[c], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


#: the width a grid reaches by default (:func:`save_grid` ``scale=None``), so small images stay readable
MIN_GRID_WIDTH = 256


def make_grid(x: Any, nrow: int | None = None, padding: int = 2, pad_value: int = 0, scale: int = 1) -> np.ndarray:
    """Tile images into one uint8 H×W×C array, ``nrow`` images per row (default ≈ √N).

    ``scale``: each image is enlarged by the integer factor ``scale`` (nearest neighbour, so pixels stay
    sharp); padding is not scaled.
    """
    if isinstance(x, (torch.Tensor, np.ndarray)) and len(x.shape) == 3:
        x = x[None]  # one image
    imgs = _images_uint8_nhwc(x, "grid images")
    n, h, w, c = imgs.shape
    if n == 0:
        raise InvalidParameterError("save_grid needs at least one image")
    nrow = nrow if nrow is not None else max(1, math.ceil(math.sqrt(n)))
    ints = all(is_integer(v) for v in (nrow, padding, pad_value))
    if not ints or nrow < 1 or padding < 0:
        raise InvalidParameterError(f"nrow must be >= 1 and padding >= 0 (integers), got nrow={nrow!r}, "
                                    f"padding={padding!r}")
    if not 0 <= pad_value <= 255:
        raise InvalidParameterError(f"pad_value is a uint8 grey level 0..255, got {pad_value!r}")
    if not is_integer(scale, 1):
        raise InvalidParameterError(f"scale must be a positive integer (1 keeps the native size), got {scale!r}")
    if scale > 1:
        imgs = imgs.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y0, x0 = padding + r * (h + padding), padding + q * (w + padding)
        grid[y0 : y0 + h, x0 : x0 + w] = imgs[i]
    return grid


def auto_scale(num_images: int, width: int, nrow: int | None, padding: int, min_width: int = MIN_GRID_WIDTH) -> int:
    """The smallest integer factor k >= 1 that makes a grid of ``num_images`` images ``width`` pixels wide
    (``nrow`` per row, default ≈ √N; padding not scaled) at least ``min_width`` pixels wide."""
    cols = min(nrow if nrow is not None else max(1, math.ceil(math.sqrt(num_images))), num_images)
    if cols < 1 or width < 1:
        return 1
    return max(1, math.ceil((min_width - padding * (cols + 1)) / (cols * width)))


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def save_grid(
    x: Any,
    path: str | os.PathLike[str],
    nrow: int | None = None,
    padding: int = 2,
    pad_value: int = 0,
    scale: int | None = None,
) -> Path:
    """Write images as one PNG grid at ``path``, atomically; returns the path.

    ``x``: uint8 N×H×W×C, or model output N×C×H×W (or one C×H×W image) in [-1, 1]. The tensor comes
    first, as in ``torchvision.utils.save_image``; the old order ``save_grid(path, x)`` still works
    and gives a :class:`DeprecationWarning`.

    ``scale``: every image is enlarged by the integer factor ``scale`` (nearest neighbour, so pixels stay
    sharp; padding is not scaled). The default ``None`` picks the smallest factor that makes the grid at
    least 256 pixels wide (:data:`MIN_GRID_WIDTH`; so 16 images of 16×16, four per row, are enlarged 4
    times: 296 pixels); images whose grid is that wide already keep their native size. ``scale=1``
    always keeps the native size.
    """
    if _is_path(x) and not _is_path(path):
        warnings.warn("save_grid(path, x) is deprecated: pass the images first, save_grid(x, path), as "
                      "torchvision.utils.save_image does", DeprecationWarning, stacklevel=2)
        x, path = path, x
    if not _is_path(path):
        raise InvalidParameterError(f"save_grid(x, path): path must be a str or os.PathLike ending in .png, got "
                                    f"{type(path).__name__}")
    if _is_path(x):
        raise InvalidParameterError(f"save_grid(x, path): x must be images (a tensor or array), got the path {str(x)!r}")
    if Path(path).suffix.lower() != ".png":
        raise InvalidParameterError(f"save_grid writes PNG; give a path ending in .png, not {str(path)!r}")
    if isinstance(x, (torch.Tensor, np.ndarray)) and len(x.shape) == 3:
        x = x[None]  # one image
    imgs = _images_uint8_nhwc(x, "grid images")
    if scale is None and is_integer(padding) and (nrow is None or is_integer(nrow, 1)):
        scale = auto_scale(len(imgs), imgs.shape[2], nrow, padding)
    data = encode_png(make_grid(imgs, nrow=nrow, padding=padding, pad_value=pad_value,
                                scale=1 if scale is None else scale))
    with atomic_write(path) as fh:
        fh.write(data)
    return Path(path)
