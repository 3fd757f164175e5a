"""A feature space that no classifier learnt: the top principal components of the pixels.

FD and KID in an oracle's features measure distance as the oracle sees images, and the oracle was
trained to separate the very classes guidance pushes towards. :class:`PixelPCA` is a second judge that
knows nothing about classes: pixels in [-1, 1] (as the models make them), centred on the training
images' mean pixel and projected onto the training images' top ``k`` principal directions. It is
fitted once on the training images (:meth:`PixelPCA.fit`) and shipped as a small weights file; at
run time it reads no data.
"""

from __future__ import annotations

from typing import Any

import torch

from guidekit.errors import InvalidParameterError

from .base import ExtractorModule, images_to_float


class PixelPCA(ExtractorModule):
    """Projection of the pixels onto ``components`` principal directions.

    ``extract`` returns ``pool`` (B, k): the projections (FD, KID, precision/recall); ``spatial``:
    the same; ``logits``: one zero column (pixels know no classes, so an Inception Score is 1).
    """

    name = "pixel-pca"

    def __init__(self, channels: int = 1, image_size: int = 16, components: int = 32) -> None:
        super().__init__()
        for label, value in (("channels", channels), ("image_size", image_size), ("components", components)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"PixelPCA {label} must be a positive integer, got {value!r}")
        dim = channels * image_size * image_size
        if components > dim:
            raise InvalidParameterError(f"PixelPCA components ({components}) cannot exceed the {dim} pixels")
        self.config = {"channels": channels, "image_size": image_size, "components": components}
        self.input_size = image_size
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("basis", torch.zeros(components, dim))
        self.eval()

    @classmethod
    def fit(cls, images: Any, components: int) -> PixelPCA:
        """Fit on a batch (uint8 NHWC or float NCHW in [-1, 1]): the mean pixel and the top eigenvectors of the
        pixel covariance."""
        x = images_to_float(images, int(images.shape[-1] if _is_uint8(images) else images.shape[1])) / 127.5 - 1.0
        if len(x) <= components:
            raise InvalidParameterError(f"fitting {components} components needs more than {components} images, "
                                        f"got {len(x)}")
        model = cls(int(x.shape[1]), int(x.shape[-1]), components)
        flat = x.reshape(len(x), -1).double()
        mean = flat.mean(0)
        centred = flat - mean
        variances, vectors = torch.linalg.eigh(centred.T @ centred / (len(flat) - 1))  # ascending
        basis = vectors.flip(1)[:, :components].T
        basis = basis * torch.where(basis.sum(1, keepdim=True) < 0, -1.0, 1.0)  # a fixed sign per direction
        top = variances.flip(0)[:components].clamp(min=0)
        model.mean.copy_(mean.float())
        model.basis.copy_(basis.float())
        model.explained_variance = float(top.sum() / variances.clamp(min=0).sum())
        return model

    def preprocess(self, images: Any) -> torch.Tensor:
        x = images_to_float(images, self.config["channels"], device=self.mean.device)
        size = self.config["image_size"]
        if tuple(x.shape[-2:]) != (size, size):
            raise InvalidParameterError(f"PixelPCA was fitted on {size}×{size} images, got {tuple(x.shape[-2:])}")
        return x / 127.5 - 1.0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        proj = (x.reshape(len(x), -1) - self.mean) @ self.basis.T
        return {"pool": proj, "spatial": proj, "logits": proj.new_zeros(len(x), 1)}


def _is_uint8(images: Any) -> bool:
    return str(getattr(images, "dtype", "")).endswith("uint8")
