"""Feature extractors for the evaluation metrics, registered as ``"extractor"`` components.

Built-ins: ``inception-v3`` (the FID Inception of the ADM evaluator; weights file given by the user)
and ``small-cnn`` (a tiny CNN trained by this project, e.g. on scikit-learn's digits).
Factories accept ``path`` (the weights file) and ``device``; a third-party extractor plugin should
accept the same two keywords so that ``guidekit evaluate --extractor NAME --extractor-path PATH`` works.
"""

from __future__ import annotations

import os
from typing import Any

from guidekit.hookspecs import hookimpl
from guidekit.registry import Component

from .base import FeatureExtractor, MissingWeightsError, images_to_float, no_tf32

__all__ = [
    "FeatureExtractor",
    "MissingWeightsError",
    "images_to_float",
    "inception_v3",
    "no_tf32",
    "small_cnn",
    "guidekit_extractors",
]


def inception_v3(
    path: str | os.PathLike[str] | None = None,
    *,
    inception_weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    resize: str = "tf1",
) -> Any:
    """The FID Inception-v3 loaded from ``pt_inception-2015-12-05-6726825d.pth``.

    ``path`` and ``inception_weights`` are synonyms; without either, ``$GUIDEKIT_INCEPTION_WEIGHTS``.
    """
    from .inception import InceptionV3

    if path is not None and inception_weights is not None and str(path) != str(inception_weights):
        from guidekit.errors import InvalidParameterError

        raise InvalidParameterError("give the Inception weights once: path= or inception_weights=, not both")
    return InceptionV3.from_weights(path if path is not None else inception_weights, device=device, resize=resize)


def small_cnn(path: str | os.PathLike[str] | None = None, *, device: str = "cpu") -> Any:
    """A :class:`~guidekit.extractors.small.SmallCNN` loaded from a file written by its ``save``."""
    from .small import SmallCNN

    return SmallCNN.load(path, device=device)


@hookimpl
def guidekit_extractors() -> list[Component]:
    return [
        Component(
            name="inception-v3",
            factory=inception_v3,
            summary="FID Inception-v3 (pt_inception-2015-12-05) as in the ADM evaluator; needs its weights file",
        ),
        Component(
            name="small-cnn",
            factory=small_cnn,
            summary="tiny CNN trained offline by guidekit (e.g. on sklearn digits); needs its weights file",
        ),
    ]
