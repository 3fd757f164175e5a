"""Entry point of guidekit-fashion: the bundled models as ``network`` components; the oracle and the
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
    return [Component("fashion32-oracle", functools.partial(load, "fashion32-oracle"),
                      "clean-image fashion32 classifier (accuracy against the requested label, FD on its features)"),
            Component("fashion32-pca", functools.partial(load, "fashion32-pca"), SUMMARIES["fashion32-pca"])]
