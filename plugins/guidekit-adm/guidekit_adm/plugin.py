"""Entry point of the guidekit-adm distribution: ADM networks and the ``guidekit sample`` command."""

from __future__ import annotations

import argparse
import functools

from guidekit import Component
from guidekit.hookspecs import hookimpl

from .encoder import EncoderUNetModel
from .factory import create_model
from .releases import RELEASES
from .unet import SuperResModel, UNetModel

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


@hookimpl
def guidekit_networks() -> list[Component]:
    releases = [Component(name, functools.partial(create_model, name), _summary(name)) for name in RELEASES]
    return releases + [
        Component("adm-unet", UNetModel, "ADM UNetModel with the reference constructor arguments"),
        Component("adm-superres", SuperResModel, "ADM SuperResModel (upsampler) with the reference arguments"),
        Component("adm-classifier", EncoderUNetModel, "ADM EncoderUNetModel (noise-aware classifier)"),
    ]


@hookimpl
def guidekit_commands(subparsers: argparse._SubParsersAction) -> None:
    from .cli import add_sample_parser
    from .train_cli import add_train_parsers

    add_sample_parser(subparsers)
    add_train_parsers(subparsers)
