"""guidekit guidance strategies as a diffusers guider (``diffusers.guiders.BaseGuidance``) for modular pipelines.

The guider combines the conditional and unconditional predictions of a step as a guidekit guidance
whose ``combine`` needs the model outputs alone (``classifier-free``, ``cfg-rescale`` with
``space="output"``, ``cfg-zero-star``), with the per-step weight w from any guidekit scaler (interval,
timestep schedules, a plugin's own): the scaler sees ``GuidanceState(t=timestep, t_index, num_steps,
neutral=1)`` with no classifier, so scalers that need logits are refused by name. Where w = 1 for the
step (the scaler or ``start``/``stop`` turn guidance off) the guider asks for the conditional batch alone.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.guiders.guider_utils import BaseGuidance, GuiderOutput

import guidekit as gk
from guidekit.errors import InvalidParameterError


class GuidekitGuider(BaseGuidance):
    """``GuidekitGuider(guidance="classifier-free", scaler="constant", gamma=w)`` is diffusers'
    ``ClassifierFreeGuidance(guidance_scale=w)``; any registered scaler (and its parameters in ``params``)
    sets w per step. ``num_train_timesteps``: T of the process, for scalers that read t/T.
    ``start``/``stop``/``enabled`` as in every diffusers guider (fractions of the steps with guidance); a scaler
    parameter of the same name (the interval scaler's ``start``) goes in ``scaler_params``, or pass the scaler
    built: ``scaler=gk.create("scaler", "interval", start=200, end=600)``. The other parameters of the
    guidance and its scaler (``gamma``, ``phi``, ...) are kept in the config as ``guidance_params``."""

    _input_predictions = ["pred_cond", "pred_uncond"]
    ignore_for_config = ["params"]

    @register_to_config
    def __init__(self, guidance: str = "classifier-free", scaler: Any = "constant", num_train_timesteps: int = 1000,
                 start: float = 0.0, stop: float = 1.0, enabled: bool = True,
                 scaler_params: dict[str, Any] | None = None, guidance_params: dict[str, Any] | None = None,
                 **params: Any) -> None:
        super().__init__(start, stop, enabled)
        params = {**(guidance_params or {}), **params}
        # the config (new(), save_pretrained) keeps them together; from_config would drop a key it thinks defaulted
        defaulted = [k for k in self.config.get("_use_default_values", []) if k != "guidance_params"]
        self.register_to_config(guidance_params=params, _use_default_values=defaulted)
        self.strategy = gk.create("guidance", guidance, scaler=scaler, **params, **(scaler_params or {}))
        if not getattr(self.strategy, "output_space", False):
            raise InvalidParameterError(
                f"guidance {guidance!r} combines x̂0 (it needs x_t and the process), which a diffusers guider does not "
                "see; use classifier-free, cfg-zero-star or cfg-rescale with space='output'")
        self.num_train_timesteps = int(num_train_timesteps)

    # -- the scale of a step ---------------------------------------------------------------------
    def _in_range(self) -> bool:
        if not self._enabled:
            return False
        if self._num_inference_steps is None or self._step is None:
            return True
        return int(self._start * self._num_inference_steps) <= self._step < int(self._stop * self._num_inference_steps)

    def _zeroed(self) -> bool:
        """A CFG-Zero* zero-init step: the prediction is zero (the paper's zero velocity)."""
        return self._enabled and self._step is not None and self._step < getattr(self.strategy, "zero_init_steps", 0)

    def scale(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """w per sample at the current step (``set_state``), from the guidekit scaler; 1 outside start/stop."""
        if not self._in_range():
            return torch.ones(batch, device=device)
        t = torch.as_tensor(self._timestep if self._timestep is not None else self.num_train_timesteps - 1,
                            device=device).reshape(-1).expand(batch)
        n = self._num_inference_steps or 1
        state = gk.GuidanceState(t=t, t_index=n - 1 - (self._step or 0), num_steps=n, logits=None, grad=None,
                                 y=torch.full((batch,), -1, device=device), num_timesteps=self.num_train_timesteps,
                                 neutral=1.0, guidance=self.strategy.name)
        return self.strategy.scale(state)

    def _needs_uncond(self) -> bool:
        return not self._zeroed() and bool((self.scale(1) != 1).any())

    # -- the diffusers guider protocol -------------------------------------------------------------
    @property
    def num_conditions(self) -> int:
        return 2 if self._needs_uncond() else 1

    @property
    def is_conditional(self) -> bool:
        return self._count_prepared == 1

    def prepare_inputs(self, data: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[Any]:
        return [self._prepare_batch(data, i, name) for i, name in zip(range(self.num_conditions), self._input_predictions)]

    def prepare_inputs_from_block_state(self, data: Any, input_fields: dict[str, str | tuple[str, str]]) -> list[Any]:
        return [self._prepare_batch_from_block_state(input_fields, data, i, name)
                for i, name in zip(range(self.num_conditions), self._input_predictions)]

    def forward(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor | None = None) -> GuiderOutput:
        if self._zeroed():
            pred = torch.zeros_like(pred_cond)
        elif pred_uncond is None:
            pred = pred_cond
        else:
            w = self.scale(len(pred_cond), pred_cond.device).to(pred_cond.dtype)
            pred = self.strategy.combine(pred_cond, pred_uncond, w.view(-1, *([1] * (pred_cond.ndim - 1))), None, None)
        return GuiderOutput(pred=pred, pred_cond=pred_cond, pred_uncond=pred_uncond)
