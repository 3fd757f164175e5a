"""Diffusion-model training: ε prediction with ADM's learned-range σ and hybrid loss, or plain ε MSE.

With ``learn_sigma`` the network returns (ε, v); the loss is ‖ε − ε_θ‖² plus the variational bound
term L_vlb on a copy of the output whose ε part is detached (so the bound trains only v), scaled by
T/1000, as ADM's ``hybrid`` objective (Nichol & Dhariwal 2021). Without it the loss is the ε MSE
(Ho et al. 2020). A class-conditional model sees the null label with probability ``class_dropout``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..diffusion import GaussianDiffusion, check_diffusion
from ..errors import InvalidParameterError
from ..guidance import check_labels
from ..identity import components_identity
from .config import TrainConfig
from .data import check_data, check_setup, draw_batch, fingerprint
from .loop import Batch, TrainResult, fit


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log p(x) of data in [-1, 1] quantised to 256 bins under N(means, e^{2·log_scales}), elementwise."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def vlb_terms(diffusion: GaussianDiffusion, output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
              t: torch.Tensor) -> torch.Tensor:
    """Per-sample L_{t-1} (KL to the true posterior) in bits, and the decoder NLL at t = 0."""
    true_mean = diffusion.q_posterior_mean(x0, x_t, t)
    true_logvar = diffusion.extract(diffusion.posterior_log_variance_clipped, t, x_t.shape)
    out = diffusion.p_mean_variance(output, x_t, t, clip_denoised=False)
    kl = normal_kl(true_mean, true_logvar, out.mean, out.log_variance).flatten(1).mean(1) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, out.mean, 0.5 * out.log_variance).flatten(1).mean(1) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def train_diffusion(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    diffusion: GaussianDiffusion,
    config: TrainConfig = TrainConfig(),
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    settings: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model(x_t, t[, y]) -> ε (‖ v)`` in place on images in [-1, 1] (labels only if conditional).

    The loss follows ``diffusion.config.learn_sigma`` (hybrid, else ε MSE). Records hold ``step``,
    ``loss``, ``mse`` (and ``vb``). ``result.ema`` is what to sample with. ``settings`` (e.g.
    ``{"architecture": ...}``) are stored with the checkpoint, and a resume with other values is refused.
    """
    check_setup(model, config, "model")
    check_diffusion(diffusion)
    check_data(images, labels, model)
    if diffusion.config.predict_xstart:
        raise InvalidParameterError("train_diffusion trains ε prediction: create the diffusion with predict_xstart=False")
    if diffusion.num_steps != diffusion.config.steps:
        raise InvalidParameterError(
            f"train on the full process (respacing ''), not a respaced one ({diffusion.num_steps} of "
            f"{diffusion.config.steps} steps); respace at sampling time"
        )
    num_classes = getattr(model, "num_classes", None)
    conditional = num_classes is not None
    null = None
    if conditional:
        if labels is None:
            raise InvalidParameterError("a class-conditional model needs labels: pass one label per image")
        null = config.null_label if config.null_label is not None else (num_classes - 1 if config.class_dropout > 0 else None)
        real_classes = null if null is not None else num_classes
        labels = check_labels(labels, len(labels), real_classes, "training data (the null label is reserved)")
        if null is not None and not 0 <= null < num_classes:
            raise InvalidParameterError(f"null_label {null} is not a class of the model (0..{num_classes - 1})")
    elif config.class_dropout > 0:
        raise InvalidParameterError("class_dropout needs a class-conditional model (one built with num_classes)")
    elif labels is not None:
        raise InvalidParameterError("labels were given but the model has no num_classes, so it would be trained "
                                    "unconditionally: pass labels=None, or build a class-conditional model (num_classes=K)")
    expected = images.shape[1] * (2 if diffusion.config.learn_sigma else 1)

    def draw(gen: torch.Generator) -> Batch:
        batch = draw_batch(gen, images, labels if conditional else None, config.batch_size)
        batch["t"] = torch.randint(0, diffusion.num_steps, (config.batch_size,), generator=gen)
        batch["noise"] = torch.randn(batch["x0"].shape, generator=gen)
        if conditional and null is not None:
            drop = torch.rand(config.batch_size, generator=gen) < config.class_dropout
            batch["y"] = torch.where(drop, torch.full_like(batch["y"], null), batch["y"])
        return batch

    def step_loss(net: nn.Module, b: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x0, t, noise = b["x0"], b["t"], b["noise"]
        x_t = diffusion.q_sample(x0, t, noise)
        t_orig = diffusion.original_timestep(t)
        out = net(x_t, t_orig, y=b["y"]) if conditional else net(x_t, t_orig)
        if out.shape[1] != expected:
            raise InvalidParameterError(
                f"the model returns {out.shape[1]} channels; with learn_sigma={diffusion.config.learn_sigma} and "
                f"{images.shape[1]}-channel images it must return {expected}. Match learn_sigma to the model"
            )
        eps = out[:, : x0.shape[1]]
        mse = (noise - eps).pow(2).flatten(1).mean(1)
        if not diffusion.config.learn_sigma:
            return mse.mean(), {"mse": mse.mean().item()}
        frozen = torch.cat([eps.detach(), out[:, x0.shape[1]:]], dim=1)
        vb = vlb_terms(diffusion, frozen, x0, x_t, t) * (diffusion.num_steps / 1000.0)
        return (mse + vb).mean(), {"mse": mse.mean().item(), "vb": vb.mean().item()}

    return fit(model, config, draw, step_loss, kind="diffusion", checkpoint=checkpoint, resume=resume,
               overwrite=overwrite, callback=callback, progress=progress, stop_after=stop_after,
               settings={**(settings or {}), "data": fingerprint(images, labels), "diffusion": diffusion.config.settings(),
                         "code": components_identity(objects={"network": model})})
