"""Adaptive projected guidance, APG (Sadat, Hilliges & Weber, ICLR 2025, Algorithm 1).

On the predicted x̂0: Δ = x̂0_c − x̂0_u, with momentum Δ ← Δ + β·Δ_prev (β < 0 in the paper),
capped in norm at r, split into the part parallel to x̂0_c and the part orthogonal to it;
x̂0 = x̂0_c + (w − 1)·(Δ_⊥ + η·Δ_∥). With η = 1, r = 0, β = 0 this is plain CFG.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..checks import check_flag
from ..errors import InvalidParameterError, UnstableGuidanceError
from .base import GuidedOutput, StepContext
from .classifier_free import ClassifierFreeGuidance
from .state import Scaler

#: momentum values with bounded sampling: in benchmarks/results/apg_momentum (mnist16-unet-cond, ddim25, no norm
#: cap, w = 4 and 8) every β in this range kept max |x_0| < 4 (data in [-1, 1]); β ≤ -0.95 or β ≥ 0.6 left it
#: (up to 41, and 1e5 at |β| = 1.5) and collapsed accuracy or saturated the images. Outside needs unsafe=True.
MOMENTUM_RANGE = (-0.9, 0.5)


class AdaptiveProjectedGuidance(ClassifierFreeGuidance):
    """APG: ``eta`` weights the parallel component, ``norm_threshold`` r caps ‖Δ‖ (0: no cap),
    ``momentum`` β averages Δ over steps (0: none). The momentum restarts at the first step of a run and
    advances only on the steps (and for the samples) where guidance is on (w ≠ 1): where the scaler turns
    guidance off it keeps its value, and a step with guidance off for the whole batch runs the conditional
    forward alone. ``momentum`` outside :data:`MOMENTUM_RANGE` is refused with
    :class:`~guidekit.errors.UnstableGuidanceError` unless ``unsafe=True``."""

    name = "apg"
    output_space = False  # works on x̂0: needs x_t and the process

    def __init__(self, scaler: Scaler | str = "constant", *, eta: float = 0.0, norm_threshold: float = 0.0,
                 momentum: float = 0.0, unsafe: bool = False, **params: Any) -> None:
        super().__init__(scaler, **params)
        bad = [f"{k}={v!r}" for k, v in (("eta", eta), ("norm_threshold", norm_threshold), ("momentum", momentum))
               if not math.isfinite(float(v))]
        if bad:
            raise InvalidParameterError(f"{', '.join(bad)}: APG's parameters must be finite numbers "
                                        "(norm_threshold=0 means no cap)")
        if float(eta) < 0 or float(norm_threshold) < 0:
            raise InvalidParameterError(f"eta and norm_threshold must be >= 0, got eta={eta}, norm_threshold={norm_threshold}")
        if not check_flag(unsafe, "unsafe") and not MOMENTUM_RANGE[0] <= float(momentum) <= MOMENTUM_RANGE[1]:
            raise UnstableGuidanceError(
                f"APG momentum={momentum} is outside [{MOMENTUM_RANGE[0]}, {MOMENTUM_RANGE[1]}], where sampling was "
                "measured to stay bounded (benchmarks/results/apg_momentum; |β| >= 1 lets the running Δ grow without "
                "bound); the paper uses -0.5. Pass unsafe=True to sample with it anyway")
        self.eta, self.norm_threshold, self.momentum = float(eta), float(norm_threshold), float(momentum)
        self._running: torch.Tensor | None = None

    def single_forward(self, w: torch.Tensor) -> str | None:
        """The conditional forward alone when w = 1 (guidance off: the momentum waits); never the unconditional."""
        return "cond" if super().single_forward(w) == "cond" else None

    def guide(self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
              y: torch.Tensor | None, context: StepContext) -> GuidedOutput:
        if context.step == 0:
            self._running = None  # a new run, even if its first steps have guidance off
        return super().guide(model, x_t, t, y, context)

    def combine(self, cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor, x_t: torch.Tensor,
                context: StepContext) -> torch.Tensor:
        diffusion, t = context.diffusion, context.index_tensor(x_t)
        x0_c = diffusion.predict_xstart_from_eps(x_t, t, cond)
        delta = x0_c - diffusion.predict_xstart_from_eps(x_t, t, uncond)
        if self.momentum != 0.0:
            running = self._running
            if running is None or running.shape != delta.shape:
                running = torch.zeros_like(delta)
            on = w != 1  # (B, 1, ...): samples with guidance on this step
            delta = torch.where(on, delta + self.momentum * running, delta)
            self._running = torch.where(on, delta, running)
        if self.norm_threshold > 0:
            norm = delta.flatten(1).norm(dim=1).view_as(w)
            delta = delta * (self.norm_threshold / norm.clamp_min(1e-12)).clamp_max(1.0)
        unit = torch.nn.functional.normalize(x0_c.double().flatten(1), dim=1)
        flat = delta.double().flatten(1)
        parallel = ((flat * unit).sum(1, keepdim=True) * unit).view_as(delta)
        update = (delta.double() - parallel) + self.eta * parallel
        x0 = x0_c + (w - 1) * update.to(delta.dtype)
        return diffusion.predict_eps_from_xstart(x_t, t, x0)
