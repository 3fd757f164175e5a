"""Hook specifications of the ``guidekit`` plugin system.

A plugin is any module or object with functions decorated by :data:`hookimpl`.
Each ``guidekit_<kind>s`` hook returns an iterable of :class:`guidekit.Component`
records; hooks run only when a registry is built, never inside a sampling loop.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import pluggy

from .component import Component

PROJECT = "guidekit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def guidekit_samplers() -> Iterable[Component]:
    """Return samplers: factories of objects with ``step(diffusion, model_output, x_t, t_index, ...)``.

    A sampler with state across the steps of a batch (a multistep solver) also has ``start(diffusion)``,
    returning a fresh object with that ``step``; the sampling loop calls it once per batch.
    """


@hookspec
def guidekit_scalers() -> Iterable[Component]:
    """Return guidance scalers: factories of callables ``GuidanceState -> (B,) tensor``."""


@hookspec
def guidekit_guidances() -> Iterable[Component]:
    """Return guidances: factories of objects with ``guide(model, x_t, t, y, context) -> GuidedOutput``."""


@hookspec
def guidekit_losses() -> Iterable[Component]:
    """Return classifier training losses: factories of callables ``(logits, y) -> scalar``."""


@hookspec
def guidekit_networks() -> Iterable[Component]:
    """Return networks: factories of ``torch.nn.Module`` diffusion models or classifiers."""


@hookspec
def guidekit_extractors() -> Iterable[Component]:
    """Return feature extractors for metrics: ``extract(images) -> {"pool", "spatial", "logits"}``."""


@hookspec(firstresult=True)
def guidekit_resolve_network(spec: str, path: str | None, device: str, params: dict[str, Any],
                             fast: bool) -> object | None:
    """Turn a network spec this plugin recognises into a ``torch.nn.Module`` with a ``card`` dict; else None.

    ``spec`` is what the user typed after ``--model``/``--classifier`` (a release name, a flag string,
    a folder ...); ``path`` the weights file given beside it (``--model-path``), or None: then the
    network comes with its own weights, or random ones (say so with ``card["random_weights"] = True``).
    ``device`` is a torch device string; ``"meta"`` asks for the architecture only, without reading
    weights, so that a command can look at the card before anything heavy is loaded. ``params`` are
    constructor arguments and loading options (``--model-param K=V``; ``--use-fp16`` arrives as
    ``use_fp16``): a resolver that claims the spec honours every key or raises naming those it accepts.
    ``fast``: the network will run on the fast path (autocast of float32 weights), so keep float32
    weights unless ``params`` ask otherwise. An implementation may take any subset of these arguments;
    one without ``params`` is refused any (the core names them).

    The first plugin that returns a network wins; the core resolves registered ``network`` names and
    training output folders after every plugin has declined. Raise a :class:`guidekit.GuidekitError`
    for a spec the plugin owns but cannot load (wrong weights, missing file), so the user sees why.
    The card says what ``guidekit sample`` needs: ``"diffusion"`` (keyword arguments of
    :meth:`guidekit.GaussianDiffusion.create`), ``"role"`` (``"diffusion"``, ``"classifier"``, ...),
    ``"image_size"``, ``"channels"``, and for conditional models ``"null_label"``. The first line of
    the implementation's docstring says which specs it resolves (it is listed when no resolver knows a spec).
    """


@hookspec
def guidekit_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add sub-commands to the ``guidekit`` command line (``subparsers.add_parser(...)``)."""


#: component kind -> name of the hook that provides it
KIND_HOOKS: dict[str, str] = {
    "sampler": "guidekit_samplers",
    "scaler": "guidekit_scalers",
    "guidance": "guidekit_guidances",
    "loss": "guidekit_losses",
    "network": "guidekit_networks",
    "extractor": "guidekit_extractors",
}
