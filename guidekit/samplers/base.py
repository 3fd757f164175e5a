"""What every sampler step shares: the p_mean_variance call, and what a step returns."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch

from ..diffusion import GaussianDiffusion, MeanVariance, check_diffusion
from ..errors import InvalidParameterError


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


def guided_xstart(diffusion: GaussianDiffusion, out: MeanVariance, x_t: torch.Tensor, t: torch.Tensor,
                  guidance_grad: torch.Tensor | None, guidance_scale: torch.Tensor | None) -> torch.Tensor:
    """x̂0 from ε' = ε − √(1−ᾱ_t)·g (ADM ``condition_score``; x̂0' is not re-clipped), or x̂0 without guidance.

    Classifier guidance enters every ε-based solver this way, so any scaler applies unchanged.
    """
    if guidance_grad is None:
        return out.pred_xstart
    alpha_bar = diffusion.extract(diffusion.alphas_cumprod, t, x_t.shape)
    eps = diffusion.predict_eps_from_xstart(x_t, t, out.pred_xstart)
    shift = (1 - alpha_bar).sqrt() * guidance_grad
    if guidance_scale is not None:
        shift = shift * per_sample(guidance_scale, x_t)
    return diffusion.predict_xstart_from_eps(x_t, t, eps - shift)


class GuidedSampler:
    """Base of samplers: ``step`` runs p_mean_variance, subclasses implement ``update``.

    ``guidance_grad`` is s·∇ log p(y|x_t) (ADM's cond_fn output). Passing the unscaled ∇ with
    ``guidance_scale=s`` instead multiplies in ED-DPM's order, matching its float32 results.

    A sampler that keeps state across the steps of a batch (a multistep solver's past outputs) also
    defines ``start(diffusion)``, returning a fresh object whose ``step`` has this signature; the loop
    calls it once per batch, so a batch stays the unit of resuming.
    """

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
        """One reverse step x_t -> x_{t-1} at respaced index ``t_index``."""
        check_diffusion(diffusion)
        for name, value in (("model_output", model_output), ("x_t", x_t), ("guidance_grad", guidance_grad),
                            ("noise", noise)):
            if value is not None and not isinstance(value, torch.Tensor):
                raise InvalidParameterError(f"{name} must be a torch tensor, got {type(value).__name__}")
        t = diffusion.index_tensor(t_index, x_t.shape[0], x_t.device)
        if guidance_grad is not None and guidance_grad.shape != x_t.shape:
            raise InvalidParameterError(f"guidance_grad has shape {tuple(guidance_grad.shape)} but x_t has "
                                        f"{tuple(x_t.shape)}; the gradient is taken with respect to x_t")
        if noise is not None and noise.shape != x_t.shape:
            raise InvalidParameterError(f"noise has shape {tuple(noise.shape)} but x_t has {tuple(x_t.shape)}; "
                                        "give one noise tensor of x_t's shape")
        if guidance_scale is not None and guidance_grad is None:
            raise InvalidParameterError("guidance_scale multiplies guidance_grad, but no guidance_grad was given")
        out = diffusion.p_mean_variance(model_output, x_t, t, clip_denoised=clip_denoised, denoised_fn=denoised_fn)
        if noise is None:
            noise = torch.randn_like(x_t)
        return self.update(diffusion, out, x_t, t, guidance_grad, guidance_scale, noise)

    def update(self, diffusion: GaussianDiffusion, out: MeanVariance, x_t: torch.Tensor, t: torch.Tensor,
               guidance_grad: torch.Tensor | None, guidance_scale: torch.Tensor | None,
               noise: torch.Tensor) -> StepOutput:
        raise NotImplementedError
