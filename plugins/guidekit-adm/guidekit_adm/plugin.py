"""Entry point of the guidekit-adm distribution: ADM networks as components, and the resolver of release names
and flag strings behind ``gk.load_network`` (so ``guidekit sample``/``train-*``/``compare`` take them)."""

from __future__ import annotations

import functools

from guidekit import Component
from guidekit.hookspecs import hookimpl

from .encoder import EncoderUNetModel
from .factory import create_model, model_card
from .releases import RELEASES
from .resolve import guidekit_resolve_network
from .unet import SuperResModel, UNetModel

__all__ = ["guidekit_networks", "guidekit_resolve_network"]

_KIND_WORDS = {"unet": "diffusion UNet", "superres": "upsampler", "classifier": "noise-aware classifier"}


def _summary(name: str) -> str:
    r = RELEASES[name]
    size = r.kwargs["image_size"]
    cond = "class-conditional" if r.kwargs.get("num_classes") else "unconditional"
    if r.kind == "classifier":
        return f"ADM {size}x{size} {_KIND_WORDS[r.kind]} (released {r.checkpoint})"
    return (
        f"ADM {size}x{size} {cond} {_KIND_WORDS[r.kind]}, {r.diffusion.schedule} schedule "
        f"(released {r.checkpoint})"
    )


def _factory(name: str) -> functools.partial:
    """``create_model(name, ...)`` carrying the release's card, for ``GaussianDiffusion.from_release``."""
    factory = functools.partial(create_model, name)
    factory.card = model_card(RELEASES[name])  # type: ignore[attr-defined]
    return factory


@hookimpl
def guidekit_networks() -> list[Component]:
    releases = [Component(name, _factory(name), _summary(name)) for name in RELEASES]
    return releases + [
        Component("adm-unet", UNetModel, "ADM UNetModel with the reference constructor arguments"),
        Component("adm-superres", SuperResModel, "ADM SuperResModel (upsampler) with the reference arguments"),
        Component("adm-classifier", EncoderUNetModel, "ADM EncoderUNetModel (noise-aware classifier)"),
    ]
