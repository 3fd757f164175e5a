"""Entry point of guidekit-mnist16: the bundled models as ``network`` components; the oracle and the
pixel PCA as ``extractor`` components (the two feature spaces ``guidekit compare`` judges in)."""

from __future__ import annotations

import functools

from guidekit import Component
from guidekit.hookspecs import hookimpl

from .models import NAMES, SUMMARIES, load


@hookimpl
def guidekit_networks() -> list[Component]:
    return [Component(name, functools.partial(load, name), SUMMARIES[name]) for name in NAMES]


@hookimpl
def guidekit_extractors() -> list[Component]:
    return [Component("mnist16-oracle", functools.partial(load, "mnist16-oracle"),
                      "clean-image mnist16 classifier (accuracy against the requested label, FD on its features)"),
            Component("mnist16-pca", functools.partial(load, "mnist16-pca"), SUMMARIES["mnist16-pca"])]
