"""CFG with φ-rescale (Lin et al., 2024, "Common diffusion noise schedules and sample steps are flawed", §3.4).

x_cfg = x_u + w·(x_c − x_u);  x_rescaled = x_cfg · std(x_c) / std(x_cfg);  x = φ·x_rescaled + (1 − φ)·x_cfg,
on the predicted x̂0 (std over each sample), so strong guidance does not over-expose the image.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InvalidParameterError
from .base import StepContext
from .classifier_free import ClassifierFreeGuidance
from .state import Scaler


class RescaledCFG(ClassifierFreeGuidance):
    """Classifier-free guidance whose x̂0 is rescaled to the conditional x̂0's standard deviation by ``phi``."""

    name = "cfg-rescale"

    def __init__(self, scaler: Scaler | str = "constant", *, phi: float = 0.7, **params: Any) -> None:
        super().__init__(scaler, **params)
        if not 0.0 <= float(phi) <= 1.0:
            raise InvalidParameterError(f"phi must be in [0, 1] (0 = plain CFG), got {phi}")
        self.phi = float(phi)

    def single_forward(self, w: torch.Tensor) -> str | None:
        """The conditional forward alone when w = 1 (rescaling then does nothing); w = 0 still needs std(x̂0_c)."""
        return "cond" if super().single_forward(w) == "cond" else None

    def combine(self, cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor, x_t: torch.Tensor,
                context: StepContext) -> torch.Tensor:
        diffusion, t = context.diffusion, context.index_tensor(x_t)
        x0_c = diffusion.predict_xstart_from_eps(x_t, t, cond)
        x0_u = diffusion.predict_xstart_from_eps(x_t, t, uncond)
        x0 = x0_u + w * (x0_c - x0_u)
        ratio = x0_c.flatten(1).std(dim=1) / x0.flatten(1).std(dim=1).clamp_min(1e-12)
        factor = (self.phi * ratio + (1 - self.phi)).view_as(w)
        return diffusion.predict_eps_from_xstart(x_t, t, x0 * factor)
