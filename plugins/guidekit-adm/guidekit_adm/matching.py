"""Which released architecture does a state dict belong to? (key → shape comparison)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import torch

from .releases import RELEASES

Shapes = Mapping[str, Sequence[int]]


def state_shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The key → shape map of a state dict."""
    return {key: tuple(value.shape) for key, value in state_dict.items()}


@cache
def release_shapes(name: str) -> Mapping[str, tuple[int, ...]]:
    """The key → shape map of a release, computed by building it on the meta device."""
    from .factory import create_model  # factory imports releases; keep the import graph acyclic

    return state_shapes(create_model(name, device="meta").state_dict())


def _normalise(shapes: Shapes) -> dict[str, tuple[int, ...]]:
    return {key: tuple(int(n) for n in shape) for key, shape in shapes.items()}


def matching_releases(shapes: Shapes) -> list[str]:
    """Names of the releases whose key → shape map equals ``shapes`` exactly."""
    target = _normalise(shapes)
    return [name for name in RELEASES if dict(release_shapes(name)) == target]


def closest_releases(shapes: Shapes, limit: int = 3) -> list[tuple[str, float]]:
    """The ``limit`` releases most similar to ``shapes`` (Jaccard index of (key, shape) pairs)."""
    target = set(_normalise(shapes).items())
    scores = []
    for name in RELEASES:
        pairs = set(release_shapes(name).items())
        union = len(pairs | target)
        scores.append((name, len(pairs & target) / union if union else 1.0))
    scores.sort(key=lambda item: -item[1])
    return scores[:limit]


def describe_matches(shapes: Shapes) -> str:
    """One sentence naming the exactly matching releases, else the closest ones."""
    exact = matching_releases(shapes)
    if exact:
        return f"the file matches the release config(s): {', '.join(exact)}; load it under that name (load_checkpoint(NAME, path); guidekit sample: --model or --classifier NAME)"
    near = [(name, score) for name, score in closest_releases(shapes) if score > 0]
    if not near:
        return "the file matches no released ADM architecture: build the model from the flags it was trained with"
    closest = ", ".join(f"{name} ({f'{score:.0%}' if score >= 0.01 else 'under 1%'} of keys/shapes agree)"
                        for name, score in near)
    return f"no release config matches the file exactly; closest: {closest}; pass the right name or flags"
