"""Small CNN feature extractors trained by this project on offline data (no downloads).

:class:`SmallCNN` has the Inception extractor's interface (``extract``/``features`` →
``{"pool", "spatial", "logits"}``) for small images (e.g. 8×8 digits, 28×28 MNIST-like), so the
whole evaluation pipeline can be exercised, and used on toy datasets, without Inception weights.
:func:`train_digits_extractor` trains one on scikit-learn's bundled ``load_digits`` (1,797 8×8
images, 10 classes) in a few seconds on a CPU; scikit-learn is imported only there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from guidekit.errors import CheckpointError, InvalidParameterError

from .base import ExtractorModule, images_to_float, resolve_weights

FORMAT = "guidekit-small-cnn"
FORMAT_VERSION = 1
WEIGHTS_ENV = "GUIDEKIT_SMALL_CNN_WEIGHTS"
HOW_TO_GET = (
    "Train one with guidekit.extractors.small.train_digits_extractor(path=...) (or build a SmallCNN, "
    "train it and call .save(path)), then pass the file with `--extractor-path PATH`, `path=PATH`, or "
    f"the environment variable {WEIGHTS_ENV}."
)


class SmallCNN(ExtractorModule):
    """conv(3×3) → conv(3×3, stride 2) → conv(3×3) → global average pool → linear.

    ``pool``: the pooled ``2·width`` features; ``spatial``: the first ``spatial_channels`` channels of
    the stride-2 map, flattened H×W×C; ``logits``: the classifier output. Inputs are resized
    bilinearly to ``input_size`` and scaled to [-1, 1].
    """

    name = "small-cnn"

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 8,
        num_classes: int = 10,
        width: int = 32,
        spatial_channels: int = 8,
    ) -> None:
        super().__init__()
        for label, value in (("in_channels", in_channels), ("input_size", input_size), ("num_classes", num_classes),
                             ("width", width), ("spatial_channels", spatial_channels)):
            if not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"SmallCNN {label} must be a positive integer, got {value!r}")
        if in_channels not in (1, 3):
            raise InvalidParameterError(f"SmallCNN in_channels must be 1 or 3, got {in_channels}")
        if spatial_channels > width:
            raise InvalidParameterError(f"spatial_channels ({spatial_channels}) cannot exceed width ({width})")
        self.config = {
            "in_channels": in_channels,
            "input_size": input_size,
            "num_classes": num_classes,
            "width": width,
            "spatial_channels": spatial_channels,
        }
        self.input_size = input_size
        self.conv1 = nn.Conv2d(in_channels, width // 2 or 1, 3, padding=1)
        self.conv2 = nn.Conv2d(width // 2 or 1, width, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width, num_classes)
        self.eval()

    def preprocess(self, images: Any) -> torch.Tensor:
        """uint8 NHWC [0, 255] or float NCHW [-1, 1] → float32 N×C×S×S in [-1, 1]."""
        x = images_to_float(images, self.config["in_channels"], device=self.fc.weight.device)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return x / 127.5 - 1.0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        spatial = h[:, : self.config["spatial_channels"]].permute(0, 2, 3, 1).reshape(h.shape[0], -1)
        h = F.relu(self.conv3(h))
        pool = h.mean(dim=(2, 3))
        return {"pool": pool, "spatial": spatial, "logits": self.fc(pool)}

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save config and weights atomically (loadable with ``torch.load(weights_only=True)``)."""
        from guidekit.io import atomic_write

        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": dict(self.config),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        with atomic_write(path) as fh:
            torch.save(payload, fh)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu") -> SmallCNN:
        """Load a file written by :meth:`save` (path or ``$GUIDEKIT_SMALL_CNN_WEIGHTS``)."""
        file = resolve_weights(path, WEIGHTS_ENV, "The small-cnn extractor", HOW_TO_GET)
        try:
            payload = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"cannot read small-cnn weights {str(file)!r} ({type(exc).__name__}: {exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError(f"{str(file)!r} is not a small-cnn file written by SmallCNN.save. {HOW_TO_GET}")
        model = cls(**payload["config"])
        try:
            model.load_state_dict(payload["state_dict"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{str(file)!r} does not match its own SmallCNN config: {exc}") from exc
        return model.to(device).eval()


def load_digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 N×8×8×1 images in [0, 255] and int64 labels (needs scikit-learn)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the digits data needs scikit-learn: pip install scikit-learn") from exc
    data = load_digits()
    images = np.round(data.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    return images, data.target.astype(np.int64)


def train_digits_extractor(
    path: str | os.PathLike[str] | None = None,
    *,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 3e-3,
    width: int = 32,
    seed: int = 0,
) -> SmallCNN:
    """Train a :class:`SmallCNN` on ``sklearn.datasets.load_digits`` (seeded, a few seconds on CPU).

    Saves it to ``path`` when given. The training accuracy is stored as ``model.train_accuracy``.
    """
    images, labels = load_digits_uint8()
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(in_channels=1, input_size=8, num_classes=10, width=width)
    x = model.preprocess(torch.from_numpy(images))
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small is faster (and steadier on a busy machine) on one thread
    try:
        model.train()
        for _ in range(epochs):
            order = torch.randperm(x.shape[0], generator=gen)
            for i in range(0, x.shape[0], batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(model(x[idx])["logits"], y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
        model.eval()
    with torch.no_grad():
        model.train_accuracy = float((model(x)["logits"].argmax(1) == y).double().mean())
    if path is not None:
        model.save(path)
    return model
