"""DDIM step with classifier guidance on the score (paper Alg. 1 lines 9-10; ADM ``condition_score``)."""

from __future__ import annotations

from typing import Callable

import attrs
import torch

from ..diffusion import GaussianDiffusion
from .base import StepOutput, nonzero_mask, per_sample


@attrs.frozen
class DDIMSampler:
    """ε' = ε − √(1−ᾱ_t)·g, x̂0' from ε' (not re-clipped), then the DDIM update with ``eta``."""

    eta: float = attrs.field(default=0.0, converter=float, validator=attrs.validators.ge(0.0))
    #: ``guidance_grad`` is s·∇ (ADM's cond_fn output). Passing the unscaled ∇ with ``guidance_scale=s``
    #: instead multiplies in ED-DPM's order, which matches its float32 results bit for bit.
    name = "ddim"

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
        pred_xstart = out.pred_xstart
        alpha_bar = diffusion.extract(diffusion.alphas_cumprod, t, x_t.shape)
        if guidance_grad is not None:
            eps = diffusion.predict_eps_from_xstart(x_t, t, pred_xstart)
            shift = (1 - alpha_bar).sqrt() * guidance_grad
            if guidance_scale is not None:
                shift = shift * per_sample(guidance_scale, x_t)
            eps = eps - shift
            pred_xstart = diffusion.predict_xstart_from_eps(x_t, t, eps)
        eps = diffusion.predict_eps_from_xstart(x_t, t, pred_xstart)
        alpha_bar_prev = diffusion.extract(diffusion.alphas_cumprod_prev, t, x_t.shape)
        sigma = (self.eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar))
                 * torch.sqrt(1 - alpha_bar / alpha_bar_prev))
        if noise is None:
            noise = torch.randn_like(x_t)
        mean_pred = pred_xstart * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
        sample = mean_pred + nonzero_mask(t, x_t.ndim) * sigma * noise
        return StepOutput(sample=sample, pred_xstart=pred_xstart)
