"""Scales that depend only on the timestep: the paper's ramp (Table 3 "Timestep-aware") and the
guidance weight schedules of Wang et al. (2024, "Analysis of classifier-free guidance weight schedulers").

s = n + (γ − n)·f(τ), τ = t/T, with n the guidance's neutral scale (``state.neutral``: 0 for
classifier guidance, 1 for classifier-free guidance, so a schedule never drops CFG below "no
guidance" into unconditional sampling). Profiles (``schedule``):

    "ramp"    f = 1 − τ            (ED-DPM Table 3: 0 at t ≈ T, peak γ at t = 0)
    "linear"  f = 2(1 − τ)         (Wang et al.; mean 1 over τ, so it spends as much guidance as constant γ)
    "cosine"  f = 1 + cos(πτ)      (Wang et al.; mean 1)

These grow as sampling proceeds ("increasing", which Wang et al. found to help);
``direction="decreasing"`` mirrors them (τ → 1 − τ).
"""

from __future__ import annotations

import math

import attrs
import torch

from ..guidance import GuidanceState
from .constant import non_negative

PROFILES = {
    "ramp": lambda tau: 1.0 - tau,
    "linear": lambda tau: 2.0 * (1.0 - tau),
    "cosine": lambda tau: 1.0 + torch.cos(math.pi * tau),
}


@attrs.frozen
class TimestepScaler:
    """s = n + (γ − n)·f(t/T) for a ``schedule`` ramp, linear or cosine, ``direction`` increasing or decreasing.

    The default (ramp, increasing) is s = γ·(T − t)/T for classifier guidance: 0 at the start of
    sampling (t≈T), the peak γ at t = 0.
    """

    gamma: float = attrs.field(default=1.0, converter=float, validator=non_negative)
    schedule: str = attrs.field(default="ramp", validator=attrs.validators.in_(tuple(PROFILES)))
    direction: str = attrs.field(default="increasing", validator=attrs.validators.in_(("increasing", "decreasing")))
    needs_grad = False

    def __call__(self, state: GuidanceState) -> torch.Tensor:
        T = float(state.num_timesteps)
        n = float(state.neutral)
        if self.schedule == "ramp" and self.direction == "increasing":  # ED-DPM's arithmetic, kept bit for bit
            s = (self.gamma - n) * (T - state.timesteps.float()) / T
        else:
            tau = state.timesteps.double() / T
            s = (self.gamma - n) * PROFILES[self.schedule](1.0 - tau if self.direction == "decreasing" else tau)
        return (s if n == 0.0 else n + s).clamp_min(0.0).to(torch.float32)
