"""Classifier guidance: one classifier forward per step, ∇ₓ log p(y|x_t) by autograd, a per-sample scale.

The scaler sees the same logits that produced the gradient (paper Eq. 10 needs p(ỹ|x_t)), so
entropy-driven scaling costs no extra network call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
import torch
import torch.nn.functional as F

from .errors import InvalidParameterError, LabelError, NonFiniteError


@attrs.frozen(eq=False)
class GuidanceState:
    """What a scaler sees at one step.

    ``t``: original timesteps (B,) the networks saw; ``t_index``: respaced index; ``num_steps``:
    length of the respaced process; ``num_timesteps``: T of the original process; ``logits`` (B, K);
    ``grad``: unscaled ∇ₓ log p(y|x_t) (B, ...) or ``None`` before the backward pass; ``y`` (B,).
    """

    t: torch.Tensor = attrs.field(converter=torch.as_tensor)
    t_index: Any
    num_steps: int
    logits: torch.Tensor = attrs.field(converter=torch.as_tensor)
    grad: torch.Tensor | None
    y: torch.Tensor = attrs.field(converter=torch.as_tensor)
    num_timesteps: int = 1000

    @property
    def batch_size(self) -> int:
        return self.logits.shape[0]

    @property
    def timesteps(self) -> torch.Tensor:
        """``t`` as a (B,) tensor on the logits' device (a scalar t is broadcast)."""
        return self.t.to(self.logits.device).expand(self.batch_size) if self.t.ndim == 0 else self.t.to(self.logits.device)

    @property
    def num_classes(self) -> int:
        return self.logits.shape[-1]

    @property
    def log_probs(self) -> torch.Tensor:
        """log p(ỹ|x_t) in float64."""
        return F.log_softmax(self.logits.double(), dim=-1)

    @property
    def entropy(self) -> torch.Tensor:
        """H(p(ỹ|x_t)) per sample in nats, float64 (paper Eq. 9); classes with p = 0 add 0."""
        return entropy_from_log_probs(self.log_probs).clamp_min(0.0)

    @property
    def labels(self) -> torch.Tensor:
        """``y`` as a (B,) int64 tensor on the logits' device (a scalar y is broadcast)."""
        y = self.y.to(self.logits.device).long()
        return y.expand(self.batch_size) if y.ndim == 0 else y

    @property
    def prob_of_label(self) -> torch.Tensor:
        """p(y|x_t) per sample."""
        return self.log_probs.gather(-1, self.labels.view(-1, 1)).squeeze(-1).exp()

    @property
    def grad_norm(self) -> torch.Tensor:
        """‖∇ₓ log p(y|x_t)‖₂ per sample (needs the gradient)."""
        if self.grad is None:
            raise InvalidParameterError("this scaler reads state.grad: give it a class attribute needs_grad = True")
        return self.grad.flatten(1).double().norm(dim=1)


def entropy_from_log_probs(log_probs: torch.Tensor) -> torch.Tensor:
    """−Σ p·log p over the last dim; a class with log p = −inf (p = 0) adds 0, in value and gradient."""
    finite = log_probs.clamp_min(torch.finfo(log_probs.dtype).min)
    return -(log_probs.exp() * finite).sum(-1)


class Scaler(Protocol):
    """A guidance scaler: ``GuidanceState -> (B,)`` non-negative scale."""

    def __call__(self, state: GuidanceState) -> torch.Tensor: ...


@attrs.frozen(eq=False)
class GuidanceResult:
    """The scaled gradient s·∇ handed to the sampler, plus what produced it (for traces)."""

    grad: torch.Tensor
    scale: torch.Tensor
    state: GuidanceState


def check_labels(y: torch.Tensor, batch: int, num_classes: int | None, what: str = "classifier") -> torch.Tensor:
    """Validate labels: shape (B,), integer, in [0, K)."""
    y = torch.as_tensor(y)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise LabelError(f"labels y must be integers, got dtype {y.dtype}; pass y.long()")
    if y.shape != (batch,):
        raise LabelError(f"labels y must have shape ({batch},), one per sample, got {tuple(y.shape)}")
    if num_classes is not None and batch and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)].tolist()
        raise LabelError(f"labels {bad[:8]} out of range for the {what} with {num_classes} classes: use 0..{num_classes - 1}")
    return y.long()


class ClassifierGuidance:
    """Guidance from a noise-aware classifier ``classifier(x_t, t) -> logits (B, K)``.

    ``scaler`` is a callable, or a registered name (``"constant"``, ``"entropy"`` ...) built with
    ``scaler_params``. A scaler with ``needs_grad = False`` is evaluated before the backward pass, and
    if it returns 0 for the whole batch the backward pass is skipped.
    """

    def __init__(self, classifier: Callable[..., torch.Tensor], scaler: Scaler | str = "constant", **scaler_params: Any) -> None:
        if isinstance(scaler, str):
            from .registry import create

            scaler = create("scaler", scaler, **scaler_params)
        elif scaler_params:
            raise InvalidParameterError("scaler parameters can only be given with a scaler name")
        if not callable(scaler):
            raise InvalidParameterError(f"scaler must be callable (GuidanceState -> (B,) tensor), got {scaler!r}")
        self.classifier = classifier
        self.scaler = scaler

    def __repr__(self) -> str:
        return f"ClassifierGuidance(classifier={type(self.classifier).__name__}, scaler={self.scaler!r})"

    def _scale(self, state: GuidanceState) -> torch.Tensor:
        s = torch.as_tensor(self.scaler(state), device=state.logits.device)
        if s.ndim == 0:
            s = s.expand(state.batch_size)
        if s.shape != (state.batch_size,):
            raise InvalidParameterError(f"scaler {self.scaler!r} returned shape {tuple(s.shape)}, expected ({state.batch_size},)")
        return s

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
        needs_grad = getattr(self.scaler, "needs_grad", True)
        with torch.enable_grad():
            x_in = x_t.detach().requires_grad_(True)
            logits = self.classifier(x_in, t)
            if logits.ndim != 2 or logits.shape[0] != x_t.shape[0]:
                raise InvalidParameterError(
                    f"classifier returned shape {tuple(logits.shape)}; it must return logits of shape (B, K)"
                )
            y = check_labels(y, x_t.shape[0], logits.shape[1]).to(logits.device)
            state = GuidanceState(t=t, t_index=t_index, num_steps=num_steps, logits=logits.detach(), grad=None,
                                  y=y, num_timesteps=num_timesteps)
            scale = None if needs_grad else self._scale(state)
            if scale is not None and not bool(scale.any()):
                grad = torch.zeros_like(x_t)
            else:
                if not logits.requires_grad:
                    raise InvalidParameterError(
                        "the classifier's logits do not depend on x_t (no autograd graph), so there is no gradient "
                        "to guide with: do not run it under torch.no_grad() or detach its output"
                    )
                selected = F.log_softmax(logits, dim=-1)[torch.arange(len(y), device=y.device), y]
                grad = torch.autograd.grad(selected.sum(), x_in)[0]
        state = attrs.evolve(state, grad=grad)
        if scale is None:
            scale = self._scale(state)
        if not bool(torch.isfinite(scale).all()):
            raise NonFiniteError(
                f"scaler {self.scaler!r} returned a non-finite scale for samples "
                f"{torch.nonzero(~torch.isfinite(scale)).flatten().tolist()} at t={t.tolist()}; set a floor or max_scale"
            )
        scale = scale.to(grad.dtype)
        return GuidanceResult(grad=scale.view(-1, *([1] * (grad.ndim - 1))) * grad, scale=scale, state=state)
