"""The feature-extractor interface shared by every metric extractor, and input conversion.

Image conventions accepted by ``extract``:

* uint8 (torch or numpy), N×H×W×C in [0, 255] — the ADM batch layout;
* floating point torch/numpy, N×C×H×W in [-1, 1] — guidekit model output.

Both become float32 N×C×H×W in [0, 255] (the range the ADM evaluator feeds its Inception graph).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from guidekit.errors import GuidekitError, InvalidParameterError

FEATURE_KEYS = ("pool", "spatial", "logits")


class MissingWeightsError(GuidekitError, FileNotFoundError):
    """An extractor's weights file was not given or does not exist."""


@runtime_checkable
class FeatureExtractor(Protocol):
    """What :func:`guidekit.metrics.evaluate` needs from an extractor.

    ``extract(images)`` returns ``{"pool": (B, D), "spatial": (B, Ds), "logits": (B, K)}`` float tensors:
    ``pool`` for FID and precision/recall, ``spatial`` for sFID, ``logits`` for the Inception Score.
    """

    name: str
    input_size: int

    def extract(self, images: Any) -> dict[str, torch.Tensor]: ...


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Full float32 matmuls and cuDNN convolutions (no TF32) inside, the previous settings restored after.

    TF32 moves Inception features by ~1e-3 relative on Ampere and later GPUs; the reference
    evaluator runs in full float32. Uses the ``fp32_precision`` switches where torch has them
    (reading the legacy ``allow_tf32`` flags after those were set raises there), else ``allow_tf32``.
    """
    backends = torch.backends
    if hasattr(backends.cuda.matmul, "fp32_precision") and hasattr(backends.cudnn, "conv"):
        switches = [(backends.cuda.matmul, "fp32_precision"), (backends.cudnn.conv, "fp32_precision")]
        off: object = "ieee"
    else:  # torch < 2.9
        switches = [(backends.cuda.matmul, "allow_tf32"), (backends.cudnn, "allow_tf32")]
        off = False
    saved = [getattr(obj, name) for obj, name in switches]
    try:
        for obj, name in switches:
            setattr(obj, name, off)
        yield
    finally:
        for (obj, name), value in zip(switches, saved):
            setattr(obj, name, value)


class ExtractorModule(torch.nn.Module):
    """Shared ``extract``: eval mode, no grad, no TF32, ``preprocess`` then ``forward`` -> feature dict."""

    def preprocess(self, images: Any) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def extract(self, images: Any) -> dict[str, torch.Tensor]:
        """Features of a batch of images (uint8 NHWC or float NCHW in [-1, 1])."""
        if self.training:
            self.eval()
        with no_tf32():
            return self(self.preprocess(images))  # through __call__, so forward hooks run

    features = extract


def images_to_float(images: Any, channels: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Convert a batch (see the module docstring) to float32 N×C×H×W in [0, 255] with ``channels`` channels."""
    if isinstance(images, np.ndarray):
        arr = np.ascontiguousarray(images)
        images = torch.from_numpy(arr if arr.flags.writeable else arr.copy())  # e.g. a read-only memmap
    if not isinstance(images, torch.Tensor):
        raise InvalidParameterError(f"images must be a torch tensor or numpy array, got {type(images).__name__}")
    if images.ndim != 4:
        raise InvalidParameterError(f"images must be a 4-d batch, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        if images.shape[-1] not in (1, 3, 4):
            raise InvalidParameterError(
                f"uint8 images must be N×H×W×C with C in (1, 3, 4), got shape {tuple(images.shape)}"
            )
        x = images.to(device=device).permute(0, 3, 1, 2).float()
    elif images.is_floating_point():
        if images.shape[1] not in (1, 3, 4):
            raise InvalidParameterError(
                f"floating-point images must be N×C×H×W in [-1, 1] with C in (1, 3, 4), got shape {tuple(images.shape)}"
            )
        x = ((images.to(device=device, dtype=torch.float32) + 1.0) * 127.5).clamp(0.0, 255.0)
    else:
        raise InvalidParameterError(f"images must be uint8 (NHWC) or floating point (NCHW), got dtype {images.dtype}")
    if x.shape[1] == 4:  # drop alpha
        x = x[:, :3]
    if x.shape[1] == channels:
        return x.contiguous()
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if channels == 1:
        return x.mean(dim=1, keepdim=True)
    raise InvalidParameterError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")


def resolve_weights(path: str | os.PathLike[str] | None, env: str, what: str, how_to_get: str) -> Path:
    """The weights file from ``path`` or the environment variable ``env``; a clear error if neither exists."""
    chosen = path if path is not None else os.environ.get(env) or None
    if chosen is None:
        raise MissingWeightsError(f"{what} needs a weights file and none was given. {how_to_get}")
    p = Path(chosen).expanduser()
    if not p.is_file():
        raise MissingWeightsError(f"{what} weights file {str(p)!r} does not exist. {how_to_get}")
    return p


def sha256_prefix(path: Path, length: int = 8) -> str:
    """First ``length`` hex digits of the file's SHA-256 (torch-hub file names end with them)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
