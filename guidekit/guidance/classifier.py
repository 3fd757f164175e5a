"""Classifier guidance: one classifier forward per step, ∇ₓ log p(y|x_t) by autograd, a per-sample scale.

The scaler sees the same logits that produced the gradient (paper Eq. 10 needs p(ỹ|x_t)), so
entropy-driven scaling costs no extra network call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import InvalidParameterError
from .base import (
    GuidedOutput,
    ScaledGuidance,
    StepContext,
    call_classifier,
    check_call,
    model_then_gradient,
    refuse_denoiser,
)
from .state import GuidanceResult, Scaler


class ClassifierGuidance(ScaledGuidance):
    """Guidance from a noise-aware classifier ``classifier(x_t, t) -> logits (B, K)``.

    ``scaler`` is a callable, or a registered name (``"constant"``, ``"entropy"`` ...) built with
    ``scaler_params``. A scaler with ``needs_grad = False`` is evaluated before the backward pass, and
    if it returns 0 for the whole batch the backward pass is skipped.
    """

    name = "classifier"

    def __init__(self, classifier: Callable[..., torch.Tensor], scaler: Scaler | str = "constant", **scaler_params: Any) -> None:
        super().__init__(scaler, **scaler_params)
        if not callable(classifier):
            raise InvalidParameterError(f"classifier must be callable as classifier(x_t, t) -> logits (B, K), got {classifier!r}")
        refuse_denoiser(classifier)
        check_call(classifier, 2, f"the classifier {type(classifier).__name__}",
                   "classifier guidance calls classifier(x_t, t) with a noise-aware classifier; for a classifier of "
                   "clean images use gk.create('guidance', 'x0-classifier', classifier=...)")
        self.classifier = classifier

    def __repr__(self) -> str:
        return f"ClassifierGuidance(classifier={type(self.classifier).__name__}, scaler={self.scaler!r})"

    def __call__(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        *,
        t_index: Any = None,
        num_steps: int = 1,
        num_timesteps: int = 1000,
    ) -> GuidanceResult:
        """Scaled gradient s·∇ₓ log p(y|x_t) at original timesteps ``t``."""
        with torch.enable_grad():
            x_in = x_t.detach().requires_grad_(True)
            logits = call_classifier(self.classifier, x_in, t)
            return self.scaled_gradient(x_in, logits, y, t, t_index=t_index, num_steps=num_steps,
                                        num_timesteps=num_timesteps)

    def guide(self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
              y: torch.Tensor | None, context: StepContext) -> GuidedOutput:
        """model(x_t) without a graph, then the classifier's scaled gradient (ADM ``cond_fn``)."""
        return model_then_gradient(self, model, x_t, t, y, context)
