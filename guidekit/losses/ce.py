"""Cross-entropy for noise-aware classifiers (paper Alg. 2 line 5)."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from ..errors import InvalidParameterError
from ..guidance import check_labels

REDUCTIONS = ("mean", "sum", "none")


def check_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Validate (B, K) logits and labels; returns the labels as int64."""
    if logits.ndim != 2:
        raise InvalidParameterError(f"logits must have shape (B, K), got {tuple(logits.shape)}; use the full (B, K) output")
    return check_labels(y, logits.shape[0], logits.shape[1], "logits").to(logits.device)


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


@attrs.frozen
class CrossEntropyLoss:
    reduction: str = attrs.field(default="mean", validator=attrs.validators.in_(REDUCTIONS))

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = check_logits(logits, y)
        return reduce(F.cross_entropy(logits, y, reduction="none"), self.reduction)
