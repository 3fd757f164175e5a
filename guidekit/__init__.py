"""guidekit: guidance strategies for pretrained diffusion models.

Importing guidekit loads no plugin; plugins are discovered on first use of
:func:`available` / :func:`create`.
"""

from __future__ import annotations

from .component import Component
from .diffusion import DiffusionConfig, GaussianDiffusion, MeanVariance
from .errors import (
    CheckpointError,
    DuplicateComponentError,
    GuidekitError,
    InvalidParameterError,
    LabelError,
    MissingGuidanceFieldError,
    NonFiniteError,
    OutputLockedError,
    PluginLoadError,
    PluginLoadWarning,
    UnknownComponentError,
    UnknownNetworkError,
    UnstableGuidanceError,
)
from .guidance import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    GuidanceResult,
    GuidanceState,
    GuidedOutput,
    Scaler,
    StepContext,
    X0ClassifierGuidance,
)
from .networks import load_network
from .registry import (
    available,
    create,
    describe,
    register_extractor,
    register_guidance,
    register_loss,
    register_network,
    register_sampler,
    register_scaler,
    registered,
)
from .respacing import space_timesteps
from .sampling import StepInfo, sample, sample_generator
from .trace import GuidanceTrace
from .training import TrainConfig, TrainResult, train_classifier, train_diffusion

__version__ = "0.2.0"


def __getattr__(name: str) -> object:
    """``gk.compare`` / ``gk.CompareResult`` load :mod:`guidekit.comparison` on first use."""
    if name in ("compare", "CompareResult"):
        from . import comparison

        return getattr(comparison, name)
    raise AttributeError(f"module 'guidekit' has no attribute {name!r}")

__all__ = [
    "CheckpointError", "ClassifierFreeGuidance", "ClassifierGuidance", "CompareResult", "Component", "DiffusionConfig",
    "DuplicateComponentError", "GaussianDiffusion", "GuidanceResult", "GuidanceTrace", "GuidanceState", "GuidedOutput",
    "GuidekitError", "InvalidParameterError", "LabelError", "MeanVariance", "MissingGuidanceFieldError", "NonFiniteError",
    "OutputLockedError", "PluginLoadError", "PluginLoadWarning", "Scaler", "StepContext", "StepInfo", "UnknownComponentError",
    "UnknownNetworkError", "UnstableGuidanceError", "X0ClassifierGuidance", "available", "compare", "create", "describe",
    "load_network", "register_extractor", "register_guidance",
    "register_loss", "register_network", "register_sampler", "register_scaler", "registered", "sample",
    "sample_generator", "space_timesteps", "TrainConfig", "TrainResult", "train_classifier", "train_diffusion",
]
