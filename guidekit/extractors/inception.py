"""Inception-v3, FID variant (``pt_inception-2015-12-05``), in plain torch.nn.

This is the network of the TF1 graph ``classify_image_graph_def.pb`` that the ADM evaluator runs
(the original TTUR/FID graph), with module names chosen so that the PyTorch state dict published
with the pytorch-fid project, ``pt_inception-2015-12-05-6726825d.pth``, loads into it as it is.
Its blocks are the FID-specific variants: the average pools of the 35×35, 17×17 and first 8×8
blocks exclude padding (``count_include_pad=False``, TF "SAME" pooling), and the last block's pool
branch is a 3×3 max pool.

Outputs (``extract``):

* ``pool``: the 2048-d global average pool (TF ``pool_3:0``) — FID, precision/recall;
* ``spatial``: the first 7 channels of the 17×17 map of ``mixed_6/conv`` (= ``Mixed_6d.branch1x1``,
  after its batch norm and ReLU), flattened in TF's H×W×C order to 2023 values — sFID;
* ``logits``: ``pool @ fc.weight.T`` (1008 classes) **without** ``fc.bias``: the ADM evaluator's IS uses
  the graph's ``softmax/logits/MatMul`` weight only, so the weights file's fc bias is loaded but not used.

Preprocessing (``resize="tf1"``, default) follows the graph: float [0, 255] → bilinear resize to
299×299 bit for bit as TensorFlow's ``ResizeBilinear`` CPU kernel (no half-pixel offset; tested
against TF's own outputs) → ``(x − 128) / 128``. Extraction runs without TF32 (:func:`guidekit.extractors.no_tf32`).
``resize="pytorch-fid"`` uses torch's bilinear resize and ``x/127.5 − 1`` instead, like pytorch-fid.

No weights are bundled or downloaded: pass the path of the published file (see :data:`HOW_TO_GET`).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from guidekit.errors import CheckpointError, InvalidParameterError

from .base import ExtractorModule, images_to_float, resolve_weights, sha256_prefix

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_ENV = "GUIDEKIT_INCEPTION_WEIGHTS"
HOW_TO_GET = (
    f"Download {WEIGHTS_FILE} (the FID Inception state dict published with the pytorch-fid project, "
    f"in its GitHub release 'fid_weights_0.1'), then pass its path with `--inception-weights PATH` on "
    f"the command line, `inception_weights=PATH` in Python, or the environment variable {WEIGHTS_ENV}."
)
INPUT_SIZE = 299
NUM_CLASSES = 1008
SPATIAL_CHANNELS = 7
RESIZE_MODES = ("tf1", "pytorch-fid")


class BasicConv2d(nn.Module):
    """conv (no bias) → batch norm (eps 1e-3) → ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: Any, stride: int = 1, padding: Any = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_same(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35×35 block (TF ``mixed``, ``mixed_1``, ``mixed_2``)."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg_pool_same(x)),
            ],
            1,
        )


class InceptionB(nn.Module):
    """35→17 reduction (TF ``mixed_3``)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, kernel_size=3, stride=2),
            ],
            1,
        )


class InceptionC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (TF ``mixed_4`` … ``mixed_7``)."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        d = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(d))))
        return [self.branch1x1(x), b7, d, self.branch_pool(_avg_pool_same(x))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.branches(x), 1)


class InceptionD(nn.Module):
    """17→8 reduction (TF ``mixed_8``)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8×8 block with split 1×3/3×1 outputs (TF ``mixed_9`` with an average pool, ``mixed_10`` with a max pool)."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.pool == "avg":
            pooled = _avg_pool_same(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat(
            [
                self.branch1x1(x),
                torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1),
                torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1),
                self.branch_pool(pooled),
            ],
            1,
        )


def _tf1_source(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output index: lower and upper source index and the float32 weight, as TF1 computes them.

    ``scale = float32(n_in) / float32(n_out)``, ``src = float32(i) · scale`` (both rounded to float32),
    lower ``floor(src)``, upper ``min(ceil(src), n_in − 1)``, weight ``src − floor(src)``.
    """
    scale = torch.tensor(n_in, dtype=torch.float32, device=device) / torch.tensor(
        n_out, dtype=torch.float32, device=device
    )
    src = torch.arange(n_out, dtype=torch.float32, device=device) * scale
    lower = src.floor()
    upper = src.ceil().long().clamp_(max=n_in - 1)
    return lower.long(), upper, src - lower


def resize_bilinear_tf1(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of N×C×H×W as TF1 ``ResizeBilinear`` (align_corners=False, no half-pixel centres).

    Bit-exact with TensorFlow's CPU kernel (tests/metrics/data/tf_resize_bilinear.npz): float32
    source coordinates ``i·(in/out)``, then per output pixel ``top = a + (b − a)·tx`` and
    ``bottom`` the same along x, and ``top + (bottom − top)·ty`` along y, each step rounded to float32.
    ``size`` is an int (square) or ``(height, width)``. The result is float32.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    x = x.float()
    h, w = x.shape[-2:]
    if (h, w) == (out_h, out_w):
        return x
    lower, upper, t = _tf1_source(w, out_w, x.device)
    left, right = x.index_select(-1, lower), x.index_select(-1, upper)
    x = left + (right - left) * t
    lower, upper, t = _tf1_source(h, out_h, x.device)
    top, bottom = x.index_select(-2, lower), x.index_select(-2, upper)
    return top + (bottom - top) * t[:, None]


class InceptionV3(ExtractorModule):
    """The FID Inception-v3. Build it with :meth:`from_weights`; random weights are for tests only."""

    name = "inception-v3"
    input_size = INPUT_SIZE

    def __init__(self, resize: str = "tf1") -> None:
        super().__init__()
        if resize not in RESIZE_MODES:
            raise InvalidParameterError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.resize = resize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, NUM_CLASSES)  # the bias is in the weights file but unused (see module doc)
        self.eval()

    # -- preprocessing ------------------------------------------------------------------------
    def preprocess(self, images: Any) -> torch.Tensor:
        """uint8 NHWC [0, 255] or float NCHW [-1, 1] → normalised float32 N×3×299×299."""
        x = images_to_float(images, 3, device=self.fc.weight.device)
        if self.resize == "tf1":
            return (resize_bilinear_tf1(x, INPUT_SIZE) - 128.0) / 128.0
        x = F.interpolate(x / 255.0, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0

    # -- network ------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised N×3×299×299 → ``{"pool", "spatial", "logits"}``."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))
        parts = self.Mixed_6d.branches(x)
        spatial = parts[0][:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF NHWC order
        x = self.Mixed_6e(torch.cat(parts, 1))
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        pool = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        logits = pool @ self.fc.weight.T  # no bias, as the ADM evaluator
        return {"pool": pool, "spatial": spatial, "logits": logits}

    # -- weights ------------------------------------------------------------------------------
    @classmethod
    def from_weights(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        resize: str = "tf1",
        check_hash: bool = True,
    ) -> InceptionV3:
        """Load ``pt_inception-2015-12-05-6726825d.pth`` from ``path`` (or ``$GUIDEKIT_INCEPTION_WEIGHTS``)."""
        file = resolve_weights(path, WEIGHTS_ENV, "The inception-v3 extractor", HOW_TO_GET)
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - report any unreadable file the same way
            raise CheckpointError(
                f"cannot read Inception weights {str(file)!r} ({type(exc).__name__}: {exc}). {HOW_TO_GET}"
            ) from exc
        model = cls(resize=resize)
        model.load_fid_state_dict(state, source=str(file))
        if check_hash and sha256_prefix(file) != WEIGHTS_SHA256_PREFIX:
            warnings.warn(
                f"{str(file)!r} loads into the FID Inception but its SHA-256 does not start with "
                f"{WEIGHTS_SHA256_PREFIX} (the published {WEIGHTS_FILE}); its FIDs are not comparable "
                f"with published numbers",
                UserWarning,
                stacklevel=2,
            )
        return model.to(device).eval()

    def load_fid_state_dict(self, state: Any, source: str = "state dict") -> None:
        """Load a pytorch-fid style state dict strictly (``num_batches_tracked`` may be absent)."""
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise CheckpointError(f"{source} is not a state dict (got {type(state).__name__}). {HOW_TO_GET}")
        own = self.state_dict()
        state = dict(state)
        for key in own:
            if key.endswith("num_batches_tracked") and key not in state:
                state[key] = own[key]
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
        if missing or unexpected or wrong:
            detail = "; ".join(
                f"{label} ({len(keys)}): {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                if keys
            )
            raise CheckpointError(
                f"{source} does not match the FID Inception-v3 architecture: {detail}. {HOW_TO_GET}"
            )
        self.load_state_dict(state, strict=True)
