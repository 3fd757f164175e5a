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
    PluginLoadError,
    PluginLoadWarning,
    UnknownComponentError,
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
from .training import TrainConfig, train_classifier

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "ClassifierFreeGuidance", "ClassifierGuidance", "Component", "DiffusionConfig", "DuplicateComponentError",
    "GaussianDiffusion", "GuidanceResult", "GuidanceTrace", "GuidanceState", "GuidedOutput", "GuidekitError", "InvalidParameterError",
    "LabelError", "MeanVariance", "MissingGuidanceFieldError", "NonFiniteError", "PluginLoadError", "PluginLoadWarning", "Scaler",
    "StepContext", "StepInfo", "UnknownComponentError", "X0ClassifierGuidance", "available", "create", "describe",
    "register_extractor", "register_guidance",
    "register_loss", "register_network", "register_sampler", "register_scaler", "registered", "sample",
    "sample_generator", "space_timesteps", "TrainConfig", "train_classifier",
]
