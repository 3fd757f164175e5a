"""PNG output without Pillow: encode one image, tile a batch into a grid, save it atomically."""

from __future__ import annotations

import math
import os
import struct
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


def make_grid(x: Any, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile images into one uint8 H×W×C array, ``nrow`` images per row (default ≈ √N)."""
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
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y0, x0 = padding + r * (h + padding), padding + q * (w + padding)
        grid[y0 : y0 + h, x0 : x0 + w] = imgs[i]
    return grid


def save_grid(
    path: str | os.PathLike[str], x: Any, nrow: int | None = None, padding: int = 2, pad_value: int = 0
) -> Path:
    """Write images as one PNG grid, atomically. ``x``: uint8 NHWC, or model output NCHW in [-1, 1]."""
    if Path(path).suffix.lower() != ".png":
        raise InvalidParameterError(f"save_grid writes PNG; give a path ending in .png, not {str(path)!r}")
    data = encode_png(make_grid(x, nrow=nrow, padding=padding, pad_value=pad_value))
    with atomic_write(path) as fh:
        fh.write(data)
    return Path(path)
