"""Ancestral DDPM step with classifier guidance (paper Eq. 8; ADM ``p_sample`` + ``condition_mean``)."""

from __future__ import annotations

from typing import Callable

import attrs
import torch

from ..diffusion import GaussianDiffusion
from .base import StepOutput, nonzero_mask, per_sample


@attrs.frozen
class DDPMSampler:
    """x_{t-1} = μ + σ²·g + σ·z, with g = s·∇ log p(y|x_t) and σ² the (learned-range) variance."""

    #: ``guidance_grad`` is s·∇ (ADM's cond_fn output). Passing the unscaled ∇ with ``guidance_scale=s``
    #: instead multiplies in ED-DPM's order, which matches its float32 results bit for bit.
    name = "ddpm"

    def step(
        self,
        diffusion: GaussianDiffusion,
        model_output: torch.Tensor,
        x_t: torch.Tensor,
        t_index: int | torch.Tensor,
        *,
        guidance_grad: torch.Tensor | None = None,
        guidance_scale: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        clip_denoised: bool = True,
        denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> StepOutput:
        t = diffusion.index_tensor(t_index, x_t.shape[0], x_t.device)
        out = diffusion.p_mean_variance(model_output, x_t, t, clip_denoised=clip_denoised, denoised_fn=denoised_fn)
        mean = out.mean
        if guidance_grad is not None:
            variance = out.variance if guidance_scale is None else out.variance * per_sample(guidance_scale, x_t)
            mean = mean.float() + variance * guidance_grad.float()
        if noise is None:
            noise = torch.randn_like(x_t)
        sample = mean + nonzero_mask(t, x_t.ndim) * torch.exp(0.5 * out.log_variance) * noise
        return StepOutput(sample=sample, pred_xstart=out.pred_xstart)
