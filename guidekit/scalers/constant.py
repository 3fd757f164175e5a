"""Constant scale s = γ (the ADM baseline, paper Table 3 "Baseline")."""

from __future__ import annotations

import math

import attrs
import torch

from ..guidance import GuidanceState


def _finite(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name!r} must be finite, got {value}")


non_negative = [attrs.validators.instance_of(float), _finite, attrs.validators.ge(0.0)]


@attrs.frozen
class ConstantScaler:
    gamma: float = attrs.field(default=1.0, converter=float, validator=non_negative)
    needs_grad = False

    def __call__(self, state: GuidanceState) -> torch.Tensor:
        return torch.full((state.batch_size,), self.gamma, dtype=torch.float32, device=state.device)
