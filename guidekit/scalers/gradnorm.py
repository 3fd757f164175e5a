"""Gradient-norm rescaling (paper Eq. 13, as its text describes it)."""

from __future__ import annotations

import attrs
import torch

from ..guidance import GuidanceState
from .constant import non_negative


@attrs.frozen
class GradNormScaler:
    """s = γ·C where ‖∇ₓ log p(y|x_t)‖₂ < M (a vanishing gradient), else γ.

    The paper's sentence says the weak gradient is rescaled; its printed Eq. 13 has the cases the
    other way round: ``flip=True`` reproduces the printed equation (C where ‖∇‖ ≥ M).
    """

    gamma: float = attrs.field(default=1.0, converter=float, validator=non_negative)
    threshold: float = attrs.field(default=0.15, converter=float, validator=non_negative)
    boost: float = attrs.field(default=5.0, converter=float, validator=non_negative)
    flip: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    needs_grad = True

    def __call__(self, state: GuidanceState) -> torch.Tensor:
        weak = state.grad_norm < self.threshold
        if self.flip:
            weak = ~weak
        return torch.where(weak, self.gamma * self.boost, self.gamma).to(torch.float32)
