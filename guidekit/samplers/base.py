"""What every sampler step returns."""

from __future__ import annotations

import attrs
import torch


@attrs.frozen(eq=False)
class StepOutput:
    """``sample`` is x_{t-1}; ``pred_xstart`` the x̂0 the step used (guided for DDIM, as ADM returns)."""

    sample: torch.Tensor
    pred_xstart: torch.Tensor


def nonzero_mask(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """1 where the respaced index is not 0 (no noise on the last step), shaped for broadcasting."""
    return (t != 0).float().view(-1, *([1] * (ndim - 1)))


def per_sample(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (B,) scale shaped to broadcast against ``like`` (B, ...), as float32."""
    return torch.as_tensor(scale, device=like.device).float().view(-1, *([1] * (like.ndim - 1)))
