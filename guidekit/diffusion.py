"""Gaussian diffusion with ADM's exact arithmetic (notes §2).

Coefficients are float64 tensors of the (always respaced) process; each per-step lookup is cast
to float32 before use, as the reference does, so one-step results match it to about 1e-7.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import torch

from .errors import InvalidParameterError
from .respacing import space_timesteps
from .schedules import SCHEDULES, beta_schedule


@attrs.frozen
class DiffusionConfig:
    """How the process is built; ``respacing`` "" keeps all ``steps``.

    ``beta_start``/``beta_end`` (``None``: ADM's linear schedule) are the endpoints of a ``linear`` or
    ``scaled_linear`` schedule as diffusers defines them (see :func:`guidekit.schedules.beta_schedule`).
    """

    steps: int = attrs.field(default=1000, validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)])
    schedule: str = attrs.field(default="linear", validator=attrs.validators.in_(SCHEDULES))
    learn_sigma: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    respacing: str = ""
    predict_xstart: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    sigma_small: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    beta_start: float | None = attrs.field(default=None, converter=attrs.converters.optional(float))
    beta_end: float | None = attrs.field(default=None, converter=attrs.converters.optional(float))

    def settings(self) -> dict[str, Any]:
        """The settings as a dict, without the beta endpoints when they are unset (records written before
        they existed compare equal)."""
        return attrs.asdict(self, filter=lambda a, v: not (a.name in ("beta_start", "beta_end") and v is None))


@attrs.frozen(eq=False)
class MeanVariance:
    """Output of :meth:`GaussianDiffusion.p_mean_variance` (notes §2.4)."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_xstart: torch.Tensor
    eps: torch.Tensor


class GaussianDiffusion:
    """A respaced Gaussian diffusion process (ADM's ``SpacedDiffusion``)."""

    def __init__(self, config: DiffusionConfig | None = None, **settings: Any) -> None:
        if settings:
            raise InvalidParameterError(
                f"GaussianDiffusion takes a DiffusionConfig, not keywords ({', '.join(sorted(settings))}); "
                f"use GaussianDiffusion.create({', '.join(f'{k}=...' for k in sorted(settings))})"
            )
        if not isinstance(config, DiffusionConfig):
            raise InvalidParameterError(f"GaussianDiffusion takes a DiffusionConfig, got {type(config).__name__}; "
                                        "build one with GaussianDiffusion.create(steps=..., schedule=..., ...)")
        self.config = config
        base_betas = beta_schedule(config.schedule, config.steps, config.beta_start, config.beta_end)
        base_cumprod = np.cumprod(1.0 - base_betas)
        kept = space_timesteps(config.steps, config.respacing)
        if not kept:
            raise InvalidParameterError(f"respacing {config.respacing!r} keeps no timesteps")
        last = 1.0
        betas, tmap = [], []
        for i, a in enumerate(base_cumprod):
            if i in kept:
                betas.append(1 - a / last)
                last = a
                tmap.append(i)
        self._set_schedule(np.array(betas, dtype=np.float64))
        self.timestep_map = torch.tensor(tmap, dtype=torch.int64)

    @classmethod
    def create(cls, **kwargs) -> GaussianDiffusion:
        """``GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing="ddim25")``."""
        from .registry import reason

        if isinstance(kwargs.get("respacing"), int) and not isinstance(kwargs["respacing"], bool):
            kwargs["respacing"] = str(kwargs["respacing"])  # respacing=25 means "25"
        if "respacing" in kwargs and not isinstance(kwargs["respacing"], str):
            raise InvalidParameterError(f"respacing must be a string such as 'ddim25', '250' or '' (all steps), "
                                        f"got {kwargs['respacing']!r}")
        try:
            return cls(DiffusionConfig(**kwargs))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidParameterError):
                raise
            raise InvalidParameterError(f"bad diffusion settings {kwargs}: {reason(exc)}") from exc

    @classmethod
    def from_model(cls, model: Any, respacing: str = "") -> GaussianDiffusion:
        """The process ``model`` was trained with, read from its ``card["diffusion"]`` (kwargs of :meth:`create`).

        Networks from ``guidekit_adm.load_checkpoint``/``create_model`` and bundled models carry such a
        card, so the schedule cannot be picked wrongly; ``respacing`` ("" = all steps) is the only choice left.
        """
        return cls._from_card(getattr(model, "card", None), type(model).__name__, respacing)

    @classmethod
    def from_release(cls, name: str, respacing: str = "") -> GaussianDiffusion:
        """The process of the registered network ``name`` (e.g. ``"256x256_diffusion_uncond"``), see :meth:`from_model`.

        Reads the component factory's ``card`` when it has one, else builds the network (on the
        ``meta`` device when its factory accepts ``device``) and reads the built network's card.
        """
        from .registry import default_registry

        factory = default_registry().get("network", name).factory
        card = getattr(factory, "card", None)
        if card is None:
            try:
                accepts_device = "device" in inspect.signature(factory).parameters
            except (TypeError, ValueError):
                accepts_device = False
            try:
                card = getattr(factory(device="meta") if accepts_device else factory(), "card", None)
            except (TypeError, ValueError) as exc:
                raise InvalidParameterError(
                    f"network {name!r} cannot be built without arguments ({exc}), so its card is unknown; build it "
                    "and use GaussianDiffusion.from_model(net), or GaussianDiffusion.create(...)"
                ) from exc
        return cls._from_card(card, f"network {name!r}", respacing)

    @classmethod
    def _from_card(cls, card: Any, what: str, respacing: str) -> GaussianDiffusion:
        settings = card.get("diffusion") if isinstance(card, Mapping) else None
        if not isinstance(settings, Mapping):
            raise InvalidParameterError(
                f"{what} carries no card['diffusion'] naming the process it was trained with; use "
                "GaussianDiffusion.create(steps=..., schedule=..., learn_sigma=...) with its training settings"
            )
        return cls.create(**{**settings, "respacing": respacing})

    def respace(self, respacing: str) -> GaussianDiffusion:
        """The same process respaced by ``respacing`` ("ddim25", "250", "timesteps:999,899,...", "" = all steps)."""
        if isinstance(respacing, int) and not isinstance(respacing, bool):
            respacing = str(respacing)
        if not isinstance(respacing, str):
            raise InvalidParameterError(f"respacing must be a string such as 'ddim25', '250' or '' (all steps), "
                                        f"got {respacing!r}")
        return type(self)(attrs.evolve(self.config, respacing=respacing))

    def _set_schedule(self, betas: np.ndarray) -> None:
        alphas = 1.0 - betas
        ac = np.cumprod(alphas)
        ac_prev = np.append(1.0, ac[:-1])
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        arrays = {
            "betas": betas,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "alphas_cumprod_next": np.append(ac[1:], 0.0),
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": np.log(np.append(post_var[1], post_var[1:]))
            if len(betas) > 1 else np.log(np.maximum(post_var, 1e-20)),
            "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
            "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
            "log_betas": np.log(betas),
        }
        for name, arr in arrays.items():
            setattr(self, name, torch.from_numpy(np.ascontiguousarray(arr)))

    # -- basics ------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        """Number of steps of the respaced process."""
        return len(self.betas)

    def __repr__(self) -> str:
        c = self.config
        betas = "" if c.beta_start is None else f", beta_start={c.beta_start:g}, beta_end={c.beta_end:g}"
        return (f"GaussianDiffusion(steps={c.steps}, schedule={c.schedule!r}{betas}, respacing={c.respacing!r}, "
                f"learn_sigma={c.learn_sigma}, num_steps={self.num_steps})")

    def index_tensor(self, t_index: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        """A (B,) int64 tensor of respaced indices, validated."""
        t = torch.as_tensor(t_index, device=device)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise InvalidParameterError(f"t_index must be an integer (or an integer tensor), got {t_index!r}")
        t = t.to(torch.int64)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise InvalidParameterError(f"t_index must be an int or a ({batch},) tensor, got shape {tuple(t.shape)}")
        if int(t.min()) < 0 or int(t.max()) >= self.num_steps:
            raise InvalidParameterError(f"t_index out of range [0, {self.num_steps - 1}]: {t.tolist()}")
        return t

    def original_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The original timestep the networks see (ADM ``_WrappedModel``), same dtype as ``t``."""
        return self.timestep_map.to(t.device)[t].to(t.dtype)

    @staticmethod
    def extract(arr: torch.Tensor, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """``arr[t]`` cast to float32 and broadcast to ``shape``."""
        res = arr.to(t.device)[t].float()
        return res.reshape(res.shape + (1,) * (len(shape) - 1)).expand(shape)

    # -- forward process -----------------------------------------------------------------------
    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε (paper Eq. 2)."""
        t = self.index_tensor(t, x_start.shape[0], x_start.device)
        return (self.extract(self.sqrt_alphas_cumprod, t, x_start.shape) * x_start
                + self.extract(self.sqrt_one_minus_alphas_cumprod, t, x_start.shape) * noise)

    def q_posterior_mean(self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (self.extract(self.posterior_mean_coef1, t, x_t.shape) * x_start
                + self.extract(self.posterior_mean_coef2, t, x_t.shape) * x_t)

    def predict_xstart_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return (self.extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
                - self.extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * eps)

    def predict_eps_from_xstart(self, x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor) -> torch.Tensor:
        return ((self.extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t - pred_xstart)
                / self.extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape))

    # -- reverse process -----------------------------------------------------------------------
    def p_mean_variance(
        self,
        model_output: torch.Tensor,
        x_t: torch.Tensor,
        t_index: int | torch.Tensor,
        *,
        clip_denoised: bool = True,
        denoised_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> MeanVariance:
        """Mean and variance of p(x_{t-1}|x_t) from the network output (notes §2.4)."""
        t = self.index_tensor(t_index, x_t.shape[0], x_t.device)
        shape = x_t.shape
        channels = shape[1]
        expected = 2 * channels if self.config.learn_sigma else channels
        if model_output.ndim != len(shape) or model_output.shape[0] != shape[0] or model_output.shape[2:] != shape[2:]:
            raise InvalidParameterError(
                f"model output has shape {tuple(model_output.shape)} but x_t is {tuple(shape)}: the model must keep "
                f"x_t's batch and image size. Check the sample shape (B, C, H, W) against the model's input"
            )
        if model_output.shape[1] != expected:
            raise InvalidParameterError(
                f"model output has shape {tuple(model_output.shape)} but x_t is {tuple(shape)}; with "
                f"learn_sigma={self.config.learn_sigma} the model must return {expected} channels. "
                f"Create the diffusion with learn_sigma matching the model."
            )
        if self.config.learn_sigma:
            model_output, v = torch.split(model_output, channels, dim=1)
            min_log = self.extract(self.posterior_log_variance_clipped, t, shape)
            max_log = self.extract(self.log_betas, t, shape)
            frac = (v + 1) / 2
            log_variance = frac * max_log + (1 - frac) * min_log
            variance = torch.exp(log_variance)
        elif self.config.sigma_small:
            variance = self.extract(self.posterior_variance, t, shape)
            log_variance = self.extract(self.posterior_log_variance_clipped, t, shape)
        else:
            # [σ̃²_1, β_1, β_2, ...]; a one-step process has no σ̃²_1 and uses β_0
            large = torch.cat([self.posterior_variance[1:2], self.betas[1:]]) if self.num_steps > 1 else self.betas
            variance = self.extract(large, t, shape)
            log_variance = self.extract(torch.log(large), t, shape)

        if self.config.predict_xstart:
            pred_xstart = model_output
        else:
            pred_xstart = self.predict_xstart_from_eps(x_t, t, model_output)
        if denoised_fn is not None:
            pred_xstart = denoised_fn(pred_xstart)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        eps = model_output if not self.config.predict_xstart else self.predict_eps_from_xstart(x_t, t, pred_xstart)
        mean = self.q_posterior_mean(pred_xstart, x_t, t)
        return MeanVariance(mean, variance, log_variance, pred_xstart, eps)


def check_diffusion(diffusion: Any) -> GaussianDiffusion:
    """``diffusion`` if it is a :class:`GaussianDiffusion`, else a named error saying how to build one."""
    if not isinstance(diffusion, GaussianDiffusion):
        raise InvalidParameterError(f"diffusion must be a GaussianDiffusion (GaussianDiffusion.from_model(model) or "
                                    f".create(...)), got {diffusion!r}")
    return diffusion
