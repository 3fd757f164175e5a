"""guidekit on Hugging Face diffusers: diffusers UNets and schedulers in guidekit, guidekit strategies in diffusers.

* :func:`from_diffusers` (``unet, scheduler`` -> ``model, diffusion``) and :func:`respacing_of`;
* samplers ``dpmpp-2m``, ``euler`` and ``unipc`` (diffusers' scheduler implementations, any guidance);
* local diffusers folders as networks through the ``guidekit_resolve_network`` hook;
* :class:`GuidekitGuider`, a ``diffusers.guiders.BaseGuidance`` whose weight comes from a guidekit scaler.

Importing this package does not import diffusers; :class:`GuidekitGuider` does, on first access.
"""

from __future__ import annotations

from typing import Any

from .folder import load_folder
from .network import DiffusersNetwork, diffusion_settings, from_diffusers, respacing_of
from .samplers import DPMSolverPP2M, EulerSampler, SchedulerSampler, UniPCSampler

__version__ = "0.2.0"
__all__ = ["DPMSolverPP2M", "DiffusersNetwork", "EulerSampler", "GuidekitGuider", "SchedulerSampler", "UniPCSampler",
           "diffusion_settings", "from_diffusers", "load_folder", "respacing_of"]


def __getattr__(name: str) -> Any:
    if name == "GuidekitGuider":
        from .guider import GuidekitGuider

        return GuidekitGuider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
