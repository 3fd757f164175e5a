"""Records of the sampling loops, below both of them: the default loop (:mod:`guidekit.sampling`) and the
fast path (:mod:`guidekit.fast`) hand the same :class:`StepInfo` to a callback after every step."""

from __future__ import annotations

import attrs
import torch

from .guidance import GuidanceResult


@attrs.frozen(eq=False)
class StepInfo:
    """Handed to ``callback`` after every step."""

    step: int
    t_index: int
    t: torch.Tensor
    x_t: torch.Tensor
    sample: torch.Tensor
    pred_xstart: torch.Tensor
    y: torch.Tensor | None
    guidance: GuidanceResult | None
