"""DDIM step with classifier guidance on the score (paper Alg. 1 lines 9-10; ADM ``condition_score``)."""

from __future__ import annotations

import attrs
import torch

from ..diffusion import GaussianDiffusion, MeanVariance
from ..scalers.constant import non_negative
from .base import GuidedSampler, StepOutput, guided_xstart, nonzero_mask


@attrs.frozen
class DDIMSampler(GuidedSampler):
    """ε' = ε − √(1−ᾱ_t)·g, x̂0' from ε' (not re-clipped), then the DDIM update with ``eta``."""

    eta: float = attrs.field(default=0.0, converter=float, validator=[*non_negative, attrs.validators.le(1.0)])
    name = "ddim"

    def update(self, diffusion: GaussianDiffusion, out: MeanVariance, x_t: torch.Tensor, t: torch.Tensor,
               guidance_grad: torch.Tensor | None, guidance_scale: torch.Tensor | None,
               noise: torch.Tensor) -> StepOutput:
        pred_xstart = guided_xstart(diffusion, out, x_t, t, guidance_grad, guidance_scale)
        alpha_bar = diffusion.extract(diffusion.alphas_cumprod, t, x_t.shape)
        eps = diffusion.predict_eps_from_xstart(x_t, t, pred_xstart)
        alpha_bar_prev = diffusion.extract(diffusion.alphas_cumprod_prev, t, x_t.shape)
        sigma = (self.eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar))
                 * torch.sqrt(1 - alpha_bar / alpha_bar_prev))
        mean_pred = pred_xstart * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
        sample = mean_pred + nonzero_mask(t, x_t.ndim) * sigma * noise
        return StepOutput(sample=sample, pred_xstart=pred_xstart)
