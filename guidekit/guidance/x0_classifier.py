"""Guidance with a clean classifier through the predicted x̂0 (Bansal et al., 2023, universal guidance, forward term).

x̂0(x_t) = (x_t − √(1−ᾱ_t)·ε_θ(x_t, t)) / √ᾱ_t, and the guidance gradient is ∇_{x_t} log p(y | x̂0(x_t)),
taken by autograd through the diffusion model's ε prediction. No noise-aware classifier is needed.
The sampler uses it like a classifier gradient (DDIM: ε' = ε − √(1−ᾱ_t)·s·∇).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..checks import check_flag
from ..errors import InvalidParameterError
from .base import (
    GuidedOutput,
    ScaledGuidance,
    StepContext,
    call_classifier,
    call_model,
    check_call,
    refuse_denoiser,
)
from .state import Scaler


class X0ClassifierGuidance(ScaledGuidance):
    """``classifier(x0) -> logits (B, K)`` (or an extractor's ``{"logits": ...}``) on clean images; ``timestep=k`` calls ``classifier(x0, k)``
    instead (a noise-aware classifier used as a clean one at t = k, e.g. 0). ``clip=True`` clamps x̂0
    to [-1, 1] before the classifier (that zeroes the gradient of saturated pixels)."""

    name = "x0-classifier"

    def __init__(self, classifier: Callable[..., torch.Tensor], scaler: Scaler | str = "constant", *,
                 timestep: int | None = None, clip: bool = False, **scaler_params: Any) -> None:
        super().__init__(scaler, **scaler_params)
        if not callable(classifier):
            raise InvalidParameterError(f"classifier must be callable as classifier(x0) -> logits (B, K), got {classifier!r}")
        refuse_denoiser(classifier)
        if timestep is not None and (isinstance(timestep, bool) or not isinstance(timestep, int) or timestep < 0):
            raise InvalidParameterError(f"timestep must be None or a non-negative integer t, got {timestep!r}")
        if timestep is None:
            check_call(classifier, 1, f"the classifier {type(classifier).__name__}",
                       "x0-classifier guidance calls classifier(x0); for a noise-aware classifier that takes "
                       "(x, t) pass timestep=0 to call it as classifier(x0, 0)")
        else:
            check_call(classifier, 2, f"the classifier {type(classifier).__name__}",
                       "with timestep=k it is called as classifier(x0, k); drop timestep for a classifier of x0 alone")
        self.classifier = classifier
        self.timestep = timestep
        self.clip = check_flag(clip, "clip")

    def __repr__(self) -> str:
        return f"X0ClassifierGuidance(classifier={type(self.classifier).__name__}, scaler={self.scaler!r})"

    def predict_xstart(self, model: Callable[..., torch.Tensor], x_in: torch.Tensor, t: torch.Tensor,
                       y: torch.Tensor | None, context: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(model output, x̂0) with the graph from ``x_in``."""
        out = call_model(model, x_in, t, y, context.class_cond)
        x0 = context.diffusion.predict_xstart_from_eps(x_in, context.index_tensor(x_in), out[:, : x_in.shape[1]])
        return out, x0.clamp(-1, 1) if self.clip else x0

    def logits(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        args = () if self.timestep is None else (torch.full_like(t, self.timestep),)
        out = call_classifier(self.classifier, x0, *args)
        # an extractor (e.g. mnist16-oracle) returns {"pool", "spatial", "logits"}: guide with its logits
        return out["logits"] if isinstance(out, Mapping) and "logits" in out else out

    def guide(self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
              y: torch.Tensor | None, context: StepContext) -> GuidedOutput:
        with torch.enable_grad():
            x_in = x_t.detach().requires_grad_(True)
            out, x0 = self.predict_xstart(model, x_in, t, y, context)
            result = self.scaled_gradient(x_in, self.logits(x0, t), y, t, t_index=context.t_index,
                                          num_steps=context.num_steps, num_timesteps=context.num_timesteps)
        return GuidedOutput(out.detach(), result.grad, result)
