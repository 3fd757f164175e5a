"""A diffusers ``UNet2DModel`` as a guidekit network, and its scheduler's process as a :class:`GaussianDiffusion`.

guidekit's loop calls ``model(x_t, t)`` (``model(x_t, t, y=y)`` when class-conditional) at original
timesteps and expects ε (‖ v with learned sigma). diffusers models predict ε, v or x0 (the scheduler's
``prediction_type``); :class:`DiffusersNetwork` converts v and x0 to ε with the process's ᾱ_t:
ε = √ᾱ·v + √(1−ᾱ)·x_t (Salimans & Ho 2022, §4) and ε = (x_t − √ᾱ·x̂0)/√(1−ᾱ).
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

import guidekit as gk
from guidekit.checks import check_positive_int
from guidekit.errors import InvalidParameterError

PREDICTIONS = ("epsilon", "v_prediction", "sample")
#: diffusers beta schedules -> guidekit schedule names
SCHEDULES = {"linear": "linear", "scaled_linear": "scaled_linear", "squaredcos_cap_v2": "cosine"}
ADM_LINEAR = (1000, 0.0001, 0.02)  # guidekit's "linear" without beta_start/beta_end


def _plain(value: Any) -> Any:
    """``value`` as JSON data (diffusers configs hold tuples, numpy scalars, FrozenDicts)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def diffusion_settings(scheduler: Any, learn_sigma: bool = False) -> dict[str, Any]:
    """``GaussianDiffusion.create`` keyword arguments for the training process of a diffusers ``scheduler``.

    Supports the DDPM family (DDPM, DDIM, DPMSolverMultistep, Euler, UniPC, PNDM ...) with the beta
    schedules linear, scaled_linear and squaredcos_cap_v2; anything else is refused by name.
    """
    config = getattr(scheduler, "config", None)
    if config is None or "num_train_timesteps" not in config or "beta_schedule" not in config:
        raise InvalidParameterError(
            f"{type(scheduler).__name__} is not a diffusers DDPM-family scheduler (it has no num_train_timesteps and "
            "beta_schedule in its config): pass a DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, ... "
            "(flow-matching schedulers are not supported)")
    if config.get("trained_betas") is not None:
        raise InvalidParameterError("schedulers with trained_betas are not supported: guidekit rebuilds the betas from "
                                    "beta_schedule, beta_start and beta_end")
    if config.get("rescale_betas_zero_snr"):
        raise InvalidParameterError("rescale_betas_zero_snr=True (zero terminal SNR) is not supported: ᾱ_T = 0 has "
                                    "no ε parametrisation at t = T")
    name = config["beta_schedule"]
    if name not in SCHEDULES:
        raise InvalidParameterError(f"beta_schedule {name!r} is not supported; use one of {', '.join(SCHEDULES)}")
    steps = int(config["num_train_timesteps"])
    settings: dict[str, Any] = {"steps": steps, "schedule": SCHEDULES[name], "learn_sigma": bool(learn_sigma)}
    start, end = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    if name == "scaled_linear" or (name == "linear" and (steps, start, end) != ADM_LINEAR):
        settings.update(beta_start=start, beta_end=end)
    variance = config.get("variance_type")
    if variance in ("fixed_small", "fixed_small_log") and not learn_sigma:
        settings["sigma_small"] = True
    return settings


def _learned_sigma(unet: Any, scheduler: Any) -> bool:
    """Whether the model returns ε ‖ v (2C channels), which guidekit reads as ADM's learned range."""
    cfg = unet.config
    doubled = int(cfg.get("out_channels", cfg["in_channels"])) == 2 * int(cfg["in_channels"])
    variance = scheduler.config.get("variance_type")
    if doubled and variance != "learned_range":
        raise InvalidParameterError(
            f"the UNet returns {cfg['out_channels']} channels for {cfg['in_channels']}-channel images (ε and a "
            f"variance) but the scheduler's variance_type is {variance!r}: guidekit reads the second half as ADM's "
            "learned range, so use a scheduler with variance_type='learned_range'")
    if variance == "learned_range" and not doubled:
        raise InvalidParameterError("the scheduler's variance_type is 'learned_range' but the UNet returns as many "
                                    "channels as it takes: it has no variance output")
    return doubled


class DiffusersNetwork(nn.Module):
    """``model(x_t, t, y=None) -> ε`` (‖ v) around a diffusers ``UNet2DModel``; ``card`` describes it."""

    def __init__(self, unet: nn.Module, scheduler: Any, *, null_label: int | None = None) -> None:
        super().__init__()
        cfg = unet.config
        self.unet = unet
        self.prediction_type = scheduler.config.get("prediction_type", "epsilon")
        if self.prediction_type not in PREDICTIONS:
            raise InvalidParameterError(f"prediction_type {self.prediction_type!r} is not supported; guidekit converts "
                                        f"{', '.join(PREDICTIONS)} to ε")
        if cfg.get("class_embed_type") is not None:
            raise InvalidParameterError(f"class_embed_type={cfg['class_embed_type']!r} is not supported: guidekit "
                                        "passes integer labels, for a UNet2DModel built with num_class_embeds=K")
        learn_sigma = _learned_sigma(unet, scheduler)
        settings = diffusion_settings(scheduler, learn_sigma)
        self.image_channels = int(cfg["in_channels"])
        self.num_classes = None if cfg.get("num_class_embeds") is None else int(cfg["num_class_embeds"])
        if null_label is not None and (self.num_classes is None or not 0 <= int(null_label) < self.num_classes):
            raise InvalidParameterError(f"null_label {null_label} is not a class of the model "
                                        f"(num_class_embeds={self.num_classes})")
        acp = gk.GaussianDiffusion.create(**settings).alphas_cumprod
        self.register_buffer("alphas_cumprod", acp.clone(), persistent=False)
        self.card = {
            "architecture": f"diffusers {type(unet).__name__}",
            "config": _plain(dict(cfg)),
            "scheduler": {"class": type(scheduler).__name__, "config": _plain(dict(scheduler.config))},
            "prediction_type": self.prediction_type,
            "diffusion": settings,
            "image_size": cfg.get("sample_size"),
            "in_channels": self.image_channels,
            "num_classes": self.num_classes,
            "null_label": null_label,
            "parameters": sum(p.numel() for p in unet.parameters()),
        }

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """ε (‖ the variance channels) at original timesteps ``t`` (B,)."""
        if self.num_classes is not None and y is None:
            raise InvalidParameterError("this diffusers UNet is class-conditional (num_class_embeds="
                                        f"{self.num_classes}): call it with labels y")
        labels = None if self.num_classes is None else y
        out = self.unet(x, t, class_labels=labels, return_dict=False)[0]
        c = x.shape[1]
        pred, rest = out[:, :c], out[:, c:]
        if self.prediction_type != "epsilon":
            acp = self.alphas_cumprod.to(x.device)[t.long()].view(-1, *([1] * (x.ndim - 1)))
            a, s = acp.sqrt().to(x.dtype), (1 - acp).sqrt().to(x.dtype)
            pred = a * pred + s * x if self.prediction_type == "v_prediction" else (x - a * pred) / s
        return torch.cat([pred, rest], dim=1) if rest.shape[1] else pred


def from_diffusers(unet: nn.Module, scheduler: Any, *, null_label: int | None = None,
                   respacing: str = "") -> tuple[DiffusersNetwork, gk.GaussianDiffusion]:
    """``(model, diffusion)`` for a diffusers ``UNet2DModel`` and its ``scheduler``.

    ``model`` is a guidekit network (ε out, whatever the scheduler's ``prediction_type``) with a ``card``;
    ``diffusion`` the :class:`guidekit.GaussianDiffusion` of the scheduler's betas, respaced by
    ``respacing`` ("" = all steps; :func:`respacing_of` gives the timesteps a scheduler visits).
    ``null_label``: the class meaning "no class" for classifier-free guidance, if the model has one.
    """
    if not isinstance(unet, nn.Module) or not hasattr(unet, "config"):
        raise InvalidParameterError(f"unet must be a diffusers model (e.g. UNet2DModel), got {type(unet).__name__}")
    model = DiffusersNetwork(unet, scheduler, null_label=null_label).eval()
    return model, gk.GaussianDiffusion.from_model(model, respacing=respacing)


def respacing_of(scheduler: Any, num_steps: int) -> str:
    """The respacing ``"timesteps:..."`` of the timesteps ``scheduler`` visits after ``set_timesteps(num_steps)``.

    Its own copy is set, so ``scheduler`` is untouched. Fractional timesteps (Euler's "linspace" spacing,
    Karras sigmas) are rounded to the nearest integer, as diffusers' DPM-Solver does for Karras sigmas;
    two steps that round to one timestep are an error.
    """
    check_positive_int(num_steps, "num_steps")
    twin = type(scheduler).from_config(scheduler.config)
    twin.set_timesteps(int(num_steps))
    listed = [int(round(float(t))) for t in twin.timesteps]
    if len(set(listed)) != len(listed):
        raise InvalidParameterError(f"{type(scheduler).__name__} with {num_steps} steps visits timesteps that round to "
                                    f"the same integer ({listed}); use fewer steps or another spacing")
    return "timesteps:" + ",".join(str(t) for t in sorted(listed, reverse=True))
