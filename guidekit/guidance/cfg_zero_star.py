"""CFG-Zero* (Fan, Zheng, Wang, Qi, Li, Zhang & Xie, 2025, "CFG-Zero*: Improved classifier-free guidance for
flow matching models").

Optimised scale: the unconditional prediction is first projected onto the conditional one,
s* = ⟨ε_c, ε_u⟩ / ‖ε_u‖² per sample, and guidance extrapolates from there:
ε̃ = s*·ε_u + w·(ε_c − s*·ε_u). With w = 1 this is ε_c; with s* = 1 it is plain CFG.

Zero-init: the first ``zero_init_steps`` steps output a zero velocity and need no network call. The
paper's models predict the flow velocity v = ε − x0 of x_σ = (1 − σ)·x0 + σ·ε; a VP process maps to
it by x_σ = x_t / (√ᾱ_t + √(1 − ᾱ_t)), so v = 0 means ε̂ = x̂0 = x_t / (√ᾱ_t + √(1 − ᾱ_t)), which is the
ε returned on those steps: the sample then stays on its flow-matching ray, as in the paper. (diffusers'
guider zeroes the raw model output instead, the same thing for a flow-matching model; for an
ε-model a zero ε would make x̂0 = x_t/√ᾱ_t, thousands of times too large at t ≈ T.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..checks import is_integer
from ..errors import InvalidParameterError
from .base import GuidedOutput, StepContext, call_model
from .classifier_free import ClassifierFreeGuidance
from .state import GuidanceResult, GuidanceState, Scaler


def optimised_scale(cond: torch.Tensor, uncond: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """s* = ⟨cond, uncond⟩ / (‖uncond‖² + eps) per sample, shaped (B, 1, ...) like ``cond``."""
    c, u = cond.flatten(1), uncond.flatten(1)
    s = (c * u).sum(1) / ((u * u).sum(1) + eps)
    return s.view(-1, *([1] * (cond.ndim - 1)))


def zero_velocity_eps(diffusion: Any, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """ε̂ = x_t / (√ᾱ_t + √(1 − ᾱ_t)): the ε (and x̂0) of a zero flow-matching velocity at respaced index ``t``."""
    ab = diffusion.extract(diffusion.alphas_cumprod, t, x_t.shape)
    return x_t / (ab.sqrt() + (1 - ab).sqrt())


class CFGZeroStar(ClassifierFreeGuidance):
    """CFG with the optimised scale s* and ``zero_init_steps`` zero-velocity first steps (1 by default, as
    diffusers; 0 turns zero-init off). ``w`` comes from the scaler like CFG's."""

    name = "cfg-zero-star"
    output_space = True

    def __init__(self, scaler: Scaler | str = "constant", *, zero_init_steps: int = 1, **params: Any) -> None:
        super().__init__(scaler, **params)
        if not is_integer(zero_init_steps, 0):
            raise InvalidParameterError(f"zero_init_steps must be a non-negative integer (0: no zero-init), got "
                                        f"{zero_init_steps!r}")
        self.zero_init_steps = int(zero_init_steps)

    def single_forward(self, w: torch.Tensor) -> str | None:
        """The conditional forward alone when w = 1; w = 0 gives s*·ε_u, which needs ε_c too."""
        return "cond" if super().single_forward(w) == "cond" else None

    def combine(self, cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor, x_t: torch.Tensor,
                context: StepContext) -> torch.Tensor:
        scaled = optimised_scale(cond, uncond) * uncond
        return scaled + w * (cond - scaled)

    def guide(self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
              y: torch.Tensor | None, context: StepContext) -> GuidedOutput:
        if context.step >= self.zero_init_steps:
            return super().guide(model, x_t, t, y, context)
        if not context.class_cond or y is None:
            raise InvalidParameterError(f"{self.name} guidance needs a class-conditional model called as "
                                        "model(x_t, t, y=y) and labels y")
        self.check_null_label(self.null_label_of(model), getattr(model, "num_classes", None), y)
        state = GuidanceState(t=t, t_index=context.t_index, num_steps=context.num_steps, logits=None, grad=None,
                              y=y, num_timesteps=context.num_timesteps, neutral=self.neutral, guidance=self.name)
        result = GuidanceResult(grad=None, scale=self.scale(state), state=state)  # what the scaler says, for traces
        eps = zero_velocity_eps(context.diffusion, x_t, context.index_tensor(x_t))
        if context.diffusion.config.learn_sigma:
            with torch.no_grad():  # the variance channels come from the conditional model
                out = call_model(model, x_t, t, y, True)
            eps = torch.cat([eps.to(out.dtype), out[:, x_t.shape[1]:]], dim=1)
        return GuidedOutput(eps, None, result)
