"""Beta schedules in float64 (notes §2.1)."""

from __future__ import annotations

import math

import numpy as np

from .errors import InvalidParameterError

SCHEDULES = ("linear", "cosine", "scaled_linear")


def beta_schedule(name: str, num_timesteps: int, beta_start: float | None = None,
                  beta_end: float | None = None) -> np.ndarray:
    """``linear``: linspace(1e-4, 0.02)·1000/T; ``cosine``: Nichol & Dhariwal with max β 0.999.

    ``beta_start``/``beta_end`` set the endpoints of ``linear`` (then not scaled by 1000/T) and of
    ``scaled_linear``, linspace(√start, √end)² (latent diffusion's schedule), as diffusers defines them.
    ``scaled_linear`` needs both; ``cosine`` takes neither.
    """
    if num_timesteps < 1:
        raise InvalidParameterError(f"steps must be >= 1, got {num_timesteps}")
    given = beta_start is not None or beta_end is not None
    if given and (beta_start is None or beta_end is None):
        raise InvalidParameterError("give both beta_start and beta_end, or neither (the ADM linear schedule)")
    if given and not 0.0 < float(beta_start) <= float(beta_end) < 1.0:
        raise InvalidParameterError(f"beta_start and beta_end must satisfy 0 < beta_start <= beta_end < 1, "
                                    f"got {beta_start}, {beta_end}")
    if name == "linear":
        if given:
            return np.linspace(float(beta_start), float(beta_end), num_timesteps, dtype=np.float64)
        scale = 1000 / num_timesteps
        betas = np.linspace(scale * 0.0001, scale * 0.02, num_timesteps, dtype=np.float64)
        if betas.max() >= 1:
            raise InvalidParameterError(
                f"the linear schedule with steps={num_timesteps} has betas up to {betas.max():g} (>= 1), which is not "
                f"a diffusion process: use steps >= 21, or schedule='cosine' for short processes"
            )
        return betas
    if name == "scaled_linear":
        if not given:
            raise InvalidParameterError("schedule='scaled_linear' needs beta_start and beta_end (e.g. 0.00085, 0.012)")
        return np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), num_timesteps, dtype=np.float64) ** 2
    if name == "cosine":
        if given:
            raise InvalidParameterError("schedule='cosine' has no beta_start/beta_end; drop them")

        def f(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array(
            [min(1 - f((i + 1) / num_timesteps) / f(i / num_timesteps), 0.999) for i in range(num_timesteps)],
            dtype=np.float64,
        )
    raise InvalidParameterError(f"unknown schedule {name!r}; use one of {', '.join(SCHEDULES)}")
