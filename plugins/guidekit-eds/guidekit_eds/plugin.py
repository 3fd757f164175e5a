"""Entry point of the guidekit-eds distribution: registers ``entropy`` and ``ect``."""

from __future__ import annotations

from guidekit import Component
from guidekit.hookspecs import hookimpl

from .ect import EntropyConstraintLoss
from .entropy import EntropyScaler


@hookimpl
def guidekit_scalers() -> list[Component]:
    return [Component("entropy", EntropyScaler, "EDS: s = γ·log K / H(p(y|x_t)) per sample (Eq. 10)")]


@hookimpl
def guidekit_losses() -> list[Component]:
    return [Component("ect", EntropyConstraintLoss, "ECT: CE + η·KL(p‖uniform) (Eq. 12)")]
