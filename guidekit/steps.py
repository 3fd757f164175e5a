"""Records and helpers of the sampling loops, below both of them: the default loop (:mod:`guidekit.sampling`) and the
fast path (:mod:`guidekit.fast`) hand the same :class:`StepInfo` to a callback after every step."""

from __future__ import annotations

from typing import Any

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


def start_sampler(sampler: Any, diffusion: Any) -> Any:
    """What steps one batch: ``sampler.start(diffusion)`` for a sampler with a history (a multistep solver
    keeps its past model outputs there, so a batch is the unit of resuming), else the sampler itself."""
    start = getattr(sampler, "start", None)
    return sampler if start is None else start(diffusion)
