"""Entropy-constraint training loss, ECT (paper Eq. 11-12): CE + η·KL(p‖U) = CE + η·(log K − H(p))."""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F

from guidekit.guidance import entropy_from_log_probs
from guidekit.losses import check_logits, reduce
from guidekit.losses.ce import REDUCTIONS

from .entropy import ED_DPM_NUM_CLASSES, NORMALIZERS, non_negative


@attrs.frozen
class EntropyConstraintLoss:
    """``eta`` defaults to 0.2 as in the paper (the released ED-DPM checkpoint used 0.1).

    ``normalizer="ed-dpm"`` (alias ``compat="ed-dpm"``) uses log(1000) as the reference code does; the constant only shifts the
    loss value, never its gradient.
    """

    eta: float = attrs.field(default=0.2, converter=float, validator=non_negative)
    normalizer: str = attrs.field(default="log-k", validator=attrs.validators.in_(NORMALIZERS))
    reduction: str = attrs.field(default="mean", validator=attrs.validators.in_(REDUCTIONS))
    compat: str | None = attrs.field(default=None, validator=attrs.validators.in_([None, "ed-dpm"]))

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = check_logits(logits, y)
        log_p = F.log_softmax(logits, dim=-1)
        ce = F.nll_loss(log_p, y, reduction="none")
        ed_dpm = self.normalizer == "ed-dpm" or self.compat == "ed-dpm"
        log_u = math.log(ED_DPM_NUM_CLASSES if ed_dpm else logits.shape[-1])
        kl = log_u - entropy_from_log_probs(log_p)
        return reduce(ce + self.eta * kl, self.reduction)
