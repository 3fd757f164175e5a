"""CFG with φ-rescale (Lin et al., 2024, "Common diffusion noise schedules and sample steps are flawed", §3.4).

x_cfg = x_u + w·(x_c − x_u);  x_rescaled = x_cfg · std(x_c) / std(x_cfg);  x = φ·x_rescaled + (1 − φ)·x_cfg,
std over each sample, so strong guidance does not over-expose the image.

Which x: Lin et al. state the rescale (§3.4) for x, the model's prediction of the image (their model
predicts v, from which the image is computed), and motivate it by the over-exposed *image*:
``space="x0"`` (the default) rescales the predicted x̂0. diffusers' ``rescale_noise_cfg`` applies the same
formula to the raw model output (ε for an ε-model): ``space="output"`` does that here, for parity with
diffusers pipelines. The two differ (std(x̂0) and std(ε) are related through x_t, not by a constant).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InvalidParameterError
from .base import StepContext
from .classifier_free import ClassifierFreeGuidance
from .state import Scaler

SPACES = ("x0", "output")


def rescaled(cfg: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """φ·cfg·std(cond)/std(cfg) + (1 − φ)·cfg, std per sample (Lin et al. Eqs. 16-18)."""
    ratio = cond.flatten(1).std(dim=1) / cfg.flatten(1).std(dim=1).clamp_min(1e-12)
    return cfg * (phi * ratio + (1 - phi)).view(-1, *([1] * (cfg.ndim - 1)))


class RescaledCFG(ClassifierFreeGuidance):
    """Classifier-free guidance rescaled to the conditional prediction's standard deviation by ``phi``,
    on the predicted x̂0 (``space="x0"``, Lin et al.) or on the model output ε (``space="output"``, diffusers)."""

    name = "cfg-rescale"

    def __init__(self, scaler: Scaler | str = "constant", *, phi: float = 0.7, space: str = "x0", **params: Any) -> None:
        super().__init__(scaler, **params)
        if not 0.0 <= float(phi) <= 1.0:
            raise InvalidParameterError(f"phi must be in [0, 1] (0 = plain CFG), got {phi}")
        if space not in SPACES:
            raise InvalidParameterError(f"space must be 'x0' (Lin et al.: the predicted image) or 'output' (diffusers: "
                                        f"the model output), got {space!r}")
        self.phi = float(phi)
        self.space = space

    @property
    def output_space(self) -> bool:
        """Whether it combines model outputs alone (``space="output"``), without x_t and the process."""
        return self.space == "output"

    def single_forward(self, w: torch.Tensor) -> str | None:
        """The conditional forward alone when w = 1 (rescaling then does nothing); w = 0 still needs std(x̂0_c)."""
        return "cond" if super().single_forward(w) == "cond" else None

    def combine(self, cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor, x_t: torch.Tensor,
                context: StepContext) -> torch.Tensor:
        if self.space == "output":
            return rescaled(uncond + w * (cond - uncond), cond, self.phi)
        diffusion, t = context.diffusion, context.index_tensor(x_t)
        x0_c = diffusion.predict_xstart_from_eps(x_t, t, cond)
        x0_u = diffusion.predict_xstart_from_eps(x_t, t, uncond)
        return diffusion.predict_eps_from_xstart(x_t, t, rescaled(x0_u + w * (x0_c - x0_u), x0_c, self.phi))
