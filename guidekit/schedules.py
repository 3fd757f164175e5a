"""Beta schedules in float64 (notes §2.1)."""

from __future__ import annotations

import math

import numpy as np

from .errors import InvalidParameterError

SCHEDULES = ("linear", "cosine")


def beta_schedule(name: str, num_timesteps: int) -> np.ndarray:
    """``linear``: linspace(1e-4, 0.02)·1000/T; ``cosine``: Nichol & Dhariwal with max β 0.999."""
    if num_timesteps < 1:
        raise InvalidParameterError(f"steps must be >= 1, got {num_timesteps}")
    if name == "linear":
        scale = 1000 / num_timesteps
        betas = np.linspace(scale * 0.0001, scale * 0.02, num_timesteps, dtype=np.float64)
        if betas.max() >= 1:
            raise InvalidParameterError(
                f"the linear schedule with steps={num_timesteps} has betas up to {betas.max():g} (>= 1), which is not "
                f"a diffusion process: use steps >= 21, or schedule='cosine' for short processes"
            )
        return betas
    if name == "cosine":
        def f(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array(
            [min(1 - f((i + 1) / num_timesteps) / f(i / num_timesteps), 0.999) for i in range(num_timesteps)],
            dtype=np.float64,
        )
    raise InvalidParameterError(f"unknown schedule {name!r}; use one of {', '.join(SCHEDULES)}")
