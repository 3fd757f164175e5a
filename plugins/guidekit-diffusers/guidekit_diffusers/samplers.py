"""Fast solvers as guidekit samplers, stepping with diffusers' own scheduler implementations.

Each batch gets a fresh diffusers scheduler built on the *respaced* process (its betas, one
diffusers step per respaced index: ``num_train_timesteps = N``, "trailing" spacing gives N−1 … 0),
so any respacing works ("ddim25", "timesteps:..." from :func:`~guidekit_diffusers.respacing_of`).
The scheduler is fed the step's x̂0 (``prediction_type="sample"``): guidekit's clipping applies to it,
and classifier guidance enters as ε' = ε − s·√(1−ᾱ_t)·∇log p before x̂0 is formed
(:func:`guidekit.samplers.base.guided_xstart`), so every scaler applies unchanged. The solvers are
deterministic: no noise is drawn, so sample i depends only on its own x_T whatever the batch size.
A multistep solver's history lives in the object :meth:`start` returns, one per batch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch

from guidekit.diffusion import GaussianDiffusion, MeanVariance
from guidekit.errors import InvalidParameterError
from guidekit.samplers.base import GuidedSampler, StepOutput, guided_xstart


class _Run(GuidedSampler):
    """One batch of a scheduler-driven sampler: steps respaced indices N−1 … 0 in order."""

    def __init__(self, scheduler: Any, num_steps: int, name: str, scaled: bool) -> None:
        self.scheduler, self.num_steps, self.name, self.scaled = scheduler, num_steps, name, scaled
        self.expected = num_steps - 1

    def update(self, diffusion: GaussianDiffusion, out: MeanVariance, x_t: torch.Tensor, t: torch.Tensor,
               guidance_grad: torch.Tensor | None, guidance_scale: torch.Tensor | None,
               noise: torch.Tensor) -> StepOutput:
        if diffusion.num_steps != self.num_steps:
            raise InvalidParameterError(f"{self.name} was started on a {self.num_steps}-step process but is stepped "
                                        f"with a {diffusion.num_steps}-step one: call start(diffusion) again")
        i = int(t[0])
        if bool((t != i).any()) or i != self.expected:
            raise InvalidParameterError(
                f"{self.name} is a multistep solver: it steps the whole batch through t_index {self.num_steps - 1} "
                f"down to 0 in order (expected {self.expected}, got {t.tolist()[:8]}); start a new run for a new batch")
        x0 = guided_xstart(diffusion, out, x_t, t, guidance_grad, guidance_scale)
        k = self.num_steps - 1 - i
        timestep = self.scheduler.timesteps[k]
        sigmas = self.scheduler.sigmas
        sample = x_t.float() * (sigmas[k] ** 2 + 1).sqrt() if self.scaled else x_t.float()
        if self.scaled:
            self.scheduler.scale_model_input(sample, timestep)  # Euler checks that this was called
        prev = self.scheduler.step(x0.float(), timestep, sample, return_dict=False)[0]
        if self.scaled:
            prev = prev / (sigmas[k + 1] ** 2 + 1).sqrt()
        self.expected = i - 1
        return StepOutput(sample=prev, pred_xstart=x0)


@attrs.frozen
class SchedulerSampler:
    """Base of samplers that step with a diffusers scheduler class; subclasses set ``scheduler_class``."""

    name: ClassVar[str] = "scheduler"
    scheduler_class: ClassVar[str] = ""
    #: Euler works on x/√ᾱ (the variance-exploding scale); the multistep solvers on x itself
    scaled: ClassVar[bool] = False
    needs_noise: ClassVar[bool] = False

    def options(self) -> dict[str, Any]:
        """Scheduler keyword arguments besides the process (the solver's own settings)."""
        return {}

    def start(self, diffusion: GaussianDiffusion) -> _Run:
        """A fresh run over ``diffusion`` (respaced): the scheduler and its history for one batch."""
        import diffusers

        betas = diffusion.betas.detach().cpu().double().numpy()
        n = len(betas)
        scheduler = getattr(diffusers, self.scheduler_class)(
            num_train_timesteps=n, trained_betas=betas.tolist(), prediction_type="sample",
            timestep_spacing="trailing", **self.options())
        scheduler.set_timesteps(n)
        return _Run(scheduler, n, self.name, self.scaled)

    def step(self, diffusion: GaussianDiffusion, *args: Any, **kwargs: Any) -> StepOutput:
        """Refused: the solver keeps a history, so it steps through the run :meth:`start` returns."""
        raise InvalidParameterError(
            f"{self.name} keeps the past model outputs of a batch: run = sampler.start(diffusion), then "
            "run.step(diffusion, model_output, x_t, t_index, ...) for t_index N-1 down to 0 (gk.sample does this)")


@attrs.frozen
class DPMSolverPP2M(SchedulerSampler):
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2), diffusers' ``DPMSolverMultistepScheduler``
    with ``algorithm_type="dpmsolver++"``, ``solver_order=2``; the last step is first order (to σ = 0)."""

    name: ClassVar[str] = "dpmpp-2m"
    scheduler_class: ClassVar[str] = "DPMSolverMultistepScheduler"

    def options(self) -> dict[str, Any]:
        return {"algorithm_type": "dpmsolver++", "solver_order": 2}


@attrs.frozen
class EulerSampler(SchedulerSampler):
    """Euler on the probability-flow ODE in σ = √((1−ᾱ)/ᾱ) (Karras et al. 2022, Alg. 1 without churn),
    diffusers' ``EulerDiscreteScheduler``. On the same timesteps it is DDIM (η = 0) up to rounding;
    for Karras sigmas respace with the timesteps of an Euler scheduler built with ``use_karras_sigmas=True``
    (:func:`~guidekit_diffusers.respacing_of`), rounded to integers."""

    name: ClassVar[str] = "euler"
    scheduler_class: ClassVar[str] = "EulerDiscreteScheduler"
    scaled: ClassVar[bool] = True


@attrs.frozen
class UniPCSampler(SchedulerSampler):
    """UniPC (Zhao et al. 2023), predictor-corrector of ``order`` 1-3 with the B(h) variant ``solver_type``,
    diffusers' ``UniPCMultistepScheduler`` on x̂0 (``predict_x0=True``)."""

    name: ClassVar[str] = "unipc"
    scheduler_class: ClassVar[str] = "UniPCMultistepScheduler"
    order: int = attrs.field(default=2, validator=[attrs.validators.instance_of(int), attrs.validators.in_((1, 2, 3))])
    solver_type: str = attrs.field(default="bh2", validator=attrs.validators.in_(("bh1", "bh2")))

    def options(self) -> dict[str, Any]:
        return {"solver_order": self.order, "solver_type": self.solver_type, "predict_x0": True}
