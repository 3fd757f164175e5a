"""What a scaler sees (:class:`GuidanceState`), what a guidance step hands on (:class:`GuidanceResult`).

A guidance fills the fields it can compute: classifier guidance gives logits and the gradient,
classifier-free guidance neither. A field it does not provide is ``None``, and reading it (or a
property built on it) raises :class:`~guidekit.errors.MissingGuidanceFieldError` naming the guidance.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
import torch
import torch.nn.functional as F

from ..errors import InvalidParameterError, LabelError, MissingGuidanceFieldError


def _optional_tensor(value: Any) -> torch.Tensor | None:
    return None if value is None else torch.as_tensor(value)


@attrs.frozen(eq=False)
class GuidanceState:
    """What a scaler sees at one step.

    ``t``: original timesteps (B,) the networks saw; ``t_index``: respaced index; ``num_steps``:
    length of the respaced process; ``num_timesteps``: T of the original process; ``logits`` (B, K);
    ``grad``: unscaled ∇ₓ log p(y|x_t) (B, ...) or ``None`` before the backward pass; ``y`` (B,).
    ``neutral``: the scale at which the guidance does nothing (0 for classifier guidance, 1 for
    classifier-free guidance), for scalers that switch guidance off; ``guidance``: the name of the
    guidance that built the state, for error messages. ``logits=None`` means the guidance has no
    classifier: reading :attr:`logits` then raises a named error.
    """

    t: torch.Tensor = attrs.field(converter=torch.as_tensor)
    t_index: Any
    num_steps: int
    _logits: torch.Tensor | None = attrs.field(converter=_optional_tensor, alias="logits")
    grad: torch.Tensor | None
    y: torch.Tensor = attrs.field(converter=torch.as_tensor)
    num_timesteps: int = 1000
    neutral: float = 0.0
    guidance: str = "classifier"

    def missing(self, field: str) -> MissingGuidanceFieldError:
        """The error for a field this state's guidance does not provide."""
        return MissingGuidanceFieldError(
            f"state.{field} is not provided by the {self.guidance!r} guidance; "
            f"use a scaler that needs only t: constant, interval or timestep (schedule=ramp|linear|cosine)"
        )

    def provides(self, field: str) -> bool:
        """Whether ``field`` (``"logits"`` or ``"grad"``) holds a value."""
        return (self._logits if field == "logits" else getattr(self, field)) is not None

    @property
    def logits(self) -> torch.Tensor:
        """Classifier logits (B, K); raises if the guidance has none."""
        if self._logits is None:
            raise self.missing("logits")
        return self._logits

    @property
    def device(self) -> torch.device:
        """Where the scale should live: the logits' device, else the labels'."""
        return (self._logits if self._logits is not None else self.y).device

    @property
    def batch_size(self) -> int:
        if self._logits is not None:
            return self._logits.shape[0]
        return next(v.shape[0] for v in (self.y, self.t, self.grad) if v is not None and v.ndim > 0)

    @property
    def timesteps(self) -> torch.Tensor:
        """``t`` as a (B,) tensor on :attr:`device` (a scalar t is broadcast)."""
        return self.t.to(self.device).expand(self.batch_size) if self.t.ndim == 0 else self.t.to(self.device)

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
        """``y`` as a (B,) int64 tensor on :attr:`device` (a scalar y is broadcast)."""
        y = self.y.to(self.device).long()
        return y.expand(self.batch_size) if y.ndim == 0 else y

    @property
    def prob_of_label(self) -> torch.Tensor:
        """p(y|x_t) per sample."""
        return self.log_probs.gather(-1, self.labels.view(-1, 1)).squeeze(-1).exp()

    @property
    def grad_norm(self) -> torch.Tensor:
        """‖∇ₓ log p(y|x_t)‖₂ per sample (needs the gradient)."""
        if self.grad is None:
            if self._logits is None:
                raise self.missing("grad")
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
    """What one guidance step did, for callbacks and traces.

    ``grad``: the scaled gradient s·∇ handed to the sampler (``None`` for a guidance that edits the
    model output instead, like classifier-free guidance); ``scale``: s per sample; ``state``: what
    the scaler saw.
    """

    grad: torch.Tensor | None
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
