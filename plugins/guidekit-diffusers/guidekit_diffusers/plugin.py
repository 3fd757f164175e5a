"""Entry point of guidekit-diffusers: the solvers as ``sampler`` components, diffusers folders as networks.

Importing it does not import diffusers (slow); the samplers and the resolver import it when used.
"""

from __future__ import annotations

from guidekit import Component
from guidekit.hookspecs import hookimpl

from .folder import resolve
from .samplers import DPMSolverPP2M, EulerSampler, UniPCSampler


@hookimpl
def guidekit_samplers() -> list[Component]:
    return [
        Component("dpmpp-2m", DPMSolverPP2M, "DPM-Solver++(2M), diffusers' DPMSolverMultistepScheduler; guidance on ε"),
        Component("euler", EulerSampler, "Euler on the probability-flow ODE (diffusers' EulerDiscreteScheduler)"),
        Component("unipc", UniPCSampler, "UniPC predictor-corrector (diffusers' UniPCMultistepScheduler); order=1-3"),
    ]


@hookimpl
def guidekit_resolve_network(spec: str, path: str | None, device: str) -> object | None:
    """A local diffusers model or pipeline folder (``save_pretrained`` layout) as a guidekit network; else None."""
    return resolve(spec, path, device)
