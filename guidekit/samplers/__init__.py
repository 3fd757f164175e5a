"""Built-in samplers, registered through the same hook as third-party plugins."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..registry import Component
from .base import GuidedSampler, StepOutput
from .ddim import DDIMSampler
from .ddpm import DDPMSampler

__all__ = ["DDIMSampler", "DDPMSampler", "GuidedSampler", "StepOutput"]


@hookimpl
def guidekit_samplers() -> list[Component]:
    return [
        Component("ddpm", DDPMSampler, "ancestral DDPM; guidance shifts the mean by σ²·g"),
        Component("ddim", DDIMSampler, "DDIM (eta); guidance shifts eps by −√(1−ᾱ)·g"),
    ]
