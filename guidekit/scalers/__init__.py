"""Built-in guidance scalers (paper Table 3), registered through the plugin hook."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..registry import Component
from .constant import ConstantScaler
from .gradnorm import GradNormScaler
from .interval import IntervalScaler
from .timestep import TimestepScaler

__all__ = ["ConstantScaler", "GradNormScaler", "IntervalScaler", "TimestepScaler"]


@hookimpl
def guidekit_scalers() -> list[Component]:
    return [
        Component("constant", ConstantScaler, "s = γ (ADM classifier guidance)"),
        Component("interval", IntervalScaler, "s = γ for t in [start, end] (default 0-700), else `outside` (default: no guidance)"),
        Component("timestep", TimestepScaler, "s = γ·(T − t)/T; schedule=linear|cosine, direction: Wang et al. 2024"),
        Component("gradnorm", GradNormScaler, "s = γ·C where ‖∇ log p‖ < M (Eq. 13)"),
    ]
