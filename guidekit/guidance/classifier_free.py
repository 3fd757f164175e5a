"""Classifier-free guidance (Ho & Salimans, 2022): ε̃ = ε(x_t, ∅) + w·(ε(x_t, y) − ε(x_t, ∅)).

w comes from the scaler, so every t-only scaler (constant, interval, timestep, linear, cosine)
applies. w = 1 is plain conditional sampling, w = 0 unconditional: the *neutral* scale, where
guidance does nothing, is 1, and the state says so (``GuidanceState.neutral = 1``). Scalers that
switch guidance off (``interval`` outside its range) or schedule it (``linear``, ``cosine``) return
or move around that neutral value, so outside the interval CFG samples the conditional model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..checks import check_flag
from ..errors import InvalidParameterError, LabelError
from .base import GuidedOutput, ScaledGuidance, StepContext, call_model
from .state import GuidanceResult, GuidanceState, Scaler


class ClassifierFreeGuidance(ScaledGuidance):
    """CFG on a class-conditional model trained with a null label (label dropout).

    ``null_label``: the label meaning "no class"; by default ``model.card["null_label"]``.
    ``batched=True`` runs one forward on 2B inputs (conditional then null labels); ``False`` runs two
    forwards of B (they agree to float rounding; convolutions round differently on 2B). With learned
    sigma only the ε channels are guided and the conditional variance channels are kept, as common
    CFG implementations for ADM-style models do. ``skip_unused``: when the whole batch has w = 1 only
    the conditional forward runs (the saving of guidance intervals), and with w = 0 only the
    unconditional one, so both reproduce conditional / null-label sampling exactly.
    """

    name = "classifier-free"
    neutral = 1.0
    #: combines model outputs alone (no x_t, no process), so it also works as a diffusers guider
    output_space = True

    def __init__(self, scaler: Scaler | str = "constant", *, null_label: int | None = None, batched: bool = True,
                 skip_unused: bool = True, **scaler_params: Any) -> None:
        super().__init__(scaler, **scaler_params)
        if null_label is not None and (isinstance(null_label, bool) or not isinstance(null_label, int) or null_label < 0):
            raise InvalidParameterError(f"null_label must be a non-negative integer label, got {null_label!r}")
        self.null_label = null_label
        self.batched = check_flag(batched, "batched")
        self.skip_unused = check_flag(skip_unused, "skip_unused")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scaler={self.scaler!r}, null_label={self.null_label}, batched={self.batched})"

    def null_label_of(self, model: Any) -> int:
        """``null_label`` if given, else the model card's ``null_label``; a given one that contradicts the card
        is an error (the model was trained with the card's label for 'no class')."""
        card = getattr(model, "card", None)
        carded = int(card["null_label"]) if isinstance(card, Mapping) and card.get("null_label") is not None else None
        if self.null_label is not None:
            k = getattr(model, "num_classes", None)
            in_range = not isinstance(k, int) or self.null_label < k  # a label beyond the classes: check_null_label's error
            if carded is not None and carded != self.null_label and in_range:
                raise InvalidParameterError(
                    f"null_label={self.null_label} contradicts the model's card, which says it was trained with "
                    f"{carded} for 'no class'; drop null_label (--guidance-param null_label) to use the card's")
            return self.null_label
        if carded is not None:
            return carded
        k = getattr(model, "num_classes", None)
        example = k - 1 if isinstance(k, int) and k > 1 else 10  # usually the last class
        raise InvalidParameterError(
            f"{self.name} guidance needs the model's null label (the class it was trained with for 'no label'): "
            f"the model has no card['null_label']; pass null_label=... (e.g. --guidance-param null_label={example})"
        )

    def check_null_label(self, null: int, num_classes: Any, y: torch.Tensor) -> None:
        """The null label is one of the model's classes, and no requested label is the null label."""
        if isinstance(num_classes, int) and null >= num_classes:
            raise InvalidParameterError(f"null_label {null} is not a class of the model (0..{num_classes - 1}); pass "
                                        "the label it was trained with for 'no class' (usually its last)")
        if bool((y == null).any()):
            raise LabelError(
                f"labels y include the null label {null} (the model's 'no class'), where guidance does nothing; ask "
                f"for real labels only" + (f" (0..{null - 1}; when labels are drawn, num_classes={null})"
                                           if num_classes == null + 1 else "")
            )

    def num_labels(self, model: Any) -> int:
        """How many real labels to draw from when y is not given: those below a last-index null label."""
        null, k = self.null_label_of(model), getattr(model, "num_classes", None)
        if k is None or null != k - 1:
            raise LabelError(f"the null label {null} is not the model's last class, so the real labels are unknown: pass y=...")
        return null

    def single_forward(self, w: torch.Tensor) -> str | None:
        """``"cond"`` or ``"uncond"`` when that forward alone gives the guided output (w all 1 or all 0)."""
        if not self.skip_unused:
            return None
        if bool((w == 1).all()):
            return "cond"
        return "uncond" if bool((w == 0).all()) else None

    def predictions(self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
                    y: torch.Tensor, null: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, unconditional) model outputs: one forward of 2B, or two of B."""
        y_null = torch.full_like(y, null)
        if self.batched:
            out = call_model(model, torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, y_null]), True)
            return out[: len(x_t)], out[len(x_t):]
        return call_model(model, x_t, t, y, True), call_model(model, x_t, t, y_null, True)

    def combine(self, cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor, x_t: torch.Tensor,
                context: StepContext) -> torch.Tensor:
        """The guided ε from the conditional and unconditional ε; ``w`` is (B, 1, ...)."""
        return uncond + w * (cond - uncond)

    def guide(self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
              y: torch.Tensor | None, context: StepContext) -> GuidedOutput:
        if not context.class_cond or y is None:
            raise InvalidParameterError(
                f"{self.name} guidance needs a class-conditional model called as model(x_t, t, y=y) and labels y; "
                "this model is unconditional (pass class_cond=True if it takes y)"
            )
        null = self.null_label_of(model)
        self.check_null_label(null, getattr(model, "num_classes", None), y)
        state = GuidanceState(t=t, t_index=context.t_index, num_steps=context.num_steps, logits=None, grad=None,
                              y=y, num_timesteps=context.num_timesteps, neutral=self.neutral, guidance=self.name)
        w = self.scale(state)
        result = GuidanceResult(grad=None, scale=w, state=state)
        with torch.no_grad():
            only = self.single_forward(w)
            if only is not None:
                labels = y if only == "cond" else torch.full_like(y, null)
                return GuidedOutput(call_model(model, x_t, t, labels, True), None, result)
            cond, uncond = self.predictions(model, x_t, t, y, null)
            c = x_t.shape[1]
            # in float64, so that w = 1 and w = 0 give the conditional and unconditional ε exactly
            wb = w.double().view(-1, *([1] * (x_t.ndim - 1)))
            eps = self.combine(cond[:, :c].double(), uncond[:, :c].double(), wb, x_t, context).to(cond.dtype)
            out = torch.cat([eps, cond[:, c:]], dim=1) if cond.shape[1] > c else eps
        return GuidedOutput(out, None, result)
