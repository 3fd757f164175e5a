"""Timestep-aware scale proportional to T − t (paper Table 3 "Timestep-aware")."""

from __future__ import annotations

import attrs
import torch

from ..guidance import GuidanceState
from .constant import non_negative


@attrs.frozen
class TimestepScaler:
    """s = γ·(T − t)/T: 0 at the start of sampling (t≈T), the peak γ at t = 0."""

    gamma: float = attrs.field(default=1.0, converter=float, validator=non_negative)
    needs_grad = False

    def __call__(self, state: GuidanceState) -> torch.Tensor:
        T = float(state.num_timesteps)
        t = state.timesteps.float()
        return (self.gamma * (T - t) / T).clamp_min(0.0).to(torch.float32)
