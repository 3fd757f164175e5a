"""Constant scale inside a timestep range (paper Table 3 "Constant (range 0-700)")."""

from __future__ import annotations

import attrs
import torch

from ..errors import InvalidParameterError
from ..guidance import GuidanceState
from .constant import non_negative


@attrs.frozen
class IntervalScaler:
    """s = γ for original timesteps ``start <= t <= end``, else ``outside``.

    ``outside=None`` (the default) is the guidance's neutral scale ``state.neutral``: guidance is off
    outside the interval, whatever "off" means for it (s = 0 for classifier guidance, w = 1 for
    classifier-free guidance, as in Kynkäänniemi et al., 2024). A number sets the scale there.
    """

    gamma: float = attrs.field(default=1.0, converter=float, validator=non_negative)
    start: int = attrs.field(default=0, validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)])
    end: int = attrs.field(default=700, validator=attrs.validators.instance_of(int))
    outside: float | None = attrs.field(default=None, converter=attrs.converters.optional(float),
                                        validator=attrs.validators.optional(non_negative))
    needs_grad = False

    @end.validator
    def _end_after_start(self, attribute: attrs.Attribute, value: int) -> None:
        if value < self.start:
            raise ValueError(f"end ({value}) must be >= start ({self.start})")

    def __call__(self, state: GuidanceState) -> torch.Tensor:
        if self.start >= state.num_timesteps:
            raise InvalidParameterError(
                f"interval [{self.start}, {self.end}] starts beyond the process's last timestep "
                f"{state.num_timesteps - 1}, so guidance would never apply; give start/end in 0..{state.num_timesteps - 1}"
            )
        t = state.timesteps
        inside = (t >= self.start) & (t <= self.end)
        return torch.where(inside, torch.tensor(self.gamma), torch.tensor(state.neutral if self.outside is None else self.outside)).to(torch.float32)
