"""Ancestral DDPM step with classifier guidance (paper Eq. 8; ADM ``p_sample`` + ``condition_mean``)."""

from __future__ import annotations

import attrs
import torch

from ..diffusion import GaussianDiffusion, MeanVariance
from .base import GuidedSampler, StepOutput, nonzero_mask, per_sample


@attrs.frozen
class DDPMSampler(GuidedSampler):
    """x_{t-1} = μ + σ²·g + σ·z, with g = s·∇ log p(y|x_t) and σ² the (learned-range) variance."""

    name = "ddpm"

    def update(self, diffusion: GaussianDiffusion, out: MeanVariance, x_t: torch.Tensor, t: torch.Tensor,
               guidance_grad: torch.Tensor | None, guidance_scale: torch.Tensor | None,
               noise: torch.Tensor) -> StepOutput:
        mean = out.mean
        if guidance_grad is not None:
            variance = out.variance if guidance_scale is None else out.variance * per_sample(guidance_scale, x_t)
            mean = mean.float() + variance * guidance_grad.float()
        sample = mean + nonzero_mask(t, x_t.ndim) * torch.exp(0.5 * out.log_variance) * noise
        return StepOutput(sample=sample, pred_xstart=out.pred_xstart)
