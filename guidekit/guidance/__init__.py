"""Guidance components: each owns the network calls of a sampling step (see :mod:`.base`).

Built-ins register through the same hook as third-party plugins:
``classifier`` (noise-aware classifier gradient), ``classifier-free`` (CFG), ``cfg-rescale``
(CFG with φ-rescale), ``apg`` (adaptive projected guidance), ``cfg-zero-star`` (CFG-Zero*) and
``x0-classifier`` (a clean classifier through the predicted x̂0).
"""

from __future__ import annotations

from ..component import Component
from ..hookspecs import hookimpl
from .apg import AdaptiveProjectedGuidance
from .base import (
    CallableGuidance,
    Guidance,
    GuidedOutput,
    ScaledGuidance,
    StepContext,
    as_guidance,
    call_model,
    takes_classifier,
)
from .cfg_zero_star import CFGZeroStar
from .classifier import ClassifierGuidance
from .classifier_free import ClassifierFreeGuidance
from .rescale import RescaledCFG
from .state import GuidanceResult, GuidanceState, Scaler, check_labels, entropy_from_log_probs
from .x0_classifier import X0ClassifierGuidance

__all__ = [
    "AdaptiveProjectedGuidance", "CFGZeroStar", "CallableGuidance", "ClassifierFreeGuidance", "ClassifierGuidance", "Guidance", "GuidanceResult",
    "GuidanceState", "GuidedOutput", "RescaledCFG", "ScaledGuidance", "Scaler", "StepContext",
    "X0ClassifierGuidance", "as_guidance", "call_model", "check_labels", "entropy_from_log_probs", "takes_classifier",
]


@hookimpl
def guidekit_guidances() -> list[Component]:
    return [
        Component("classifier", ClassifierGuidance, "s·∇ log p(y|x_t) from a noise-aware classifier (ADM)"),
        Component("classifier-free", ClassifierFreeGuidance, "ε_u + w·(ε_c − ε_u) with a null label (Ho & Salimans)"),
        Component("cfg-rescale", RescaledCFG, "CFG with the std of x̂0 (space=x0) or ε (space=output) rescaled by φ (Lin et al. 2024)"),
        Component("apg", AdaptiveProjectedGuidance, "CFG, parallel part down-weighted, norm cap, momentum (Sadat et al. 2025)"),
        Component("cfg-zero-star", CFGZeroStar, "CFG from s*·ε_u, s* = ⟨ε_c, ε_u⟩/‖ε_u‖², zero-velocity first steps (Fan et al. 2025)"),
        Component("x0-classifier", X0ClassifierGuidance, "s·∇ log p(y|x̂0(x_t)) with a clean classifier (Bansal et al. 2023)"),
    ]
