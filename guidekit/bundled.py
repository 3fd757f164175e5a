"""Networks shipped inside a plugin distribution (guidekit-mnist16, guidekit-fashion): one loader for all.

A bundled set is a ``weights/`` folder holding, per network, ``NAME.safetensors`` and its card
``NAME.json`` (data, preprocessing, training split, architecture, training command and seed, metrics,
sha256 of the weights). :class:`Bundle` reads the card, checks the sha256, rebuilds the architecture
from the card, loads the weights strictly and attaches the card, with the files it names resolved:
``card["split"][part]["path"]`` for the training fingerprints and the held-out images, and
``card["reference_batch"]``, the held-out reference that ``guidekit compare`` and the demo measure
against. The plugin gives the builder of its ADM networks, so the core imports no plugin package.

A card says how its weights are used (architecture, diffusion process, null label, training split), so in
an installed distribution it is checked against the sha256 the installer recorded (the distribution's
``RECORD``): an edited or damaged card is a named error, not a network sampled with another process. An
editable install (a checkout) records no hashes: there the cards are the training scripts' to rewrite.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from .errors import CheckpointError, UnknownComponentError


def sha256(path: Path) -> str:
    from .comparison.split import sha256_file

    return sha256_file(path)


@functools.cache
def recorded_hashes(distribution: str) -> dict[Path, tuple[str, str]]:
    """``{installed file: (hash name, urlsafe-base64 digest)}`` from the ``RECORD`` of an installed distribution;
    empty when it is not installed or records no hash of its package files (an editable install)."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    return {Path(str(f.locate())).resolve(): (f.hash.mode, f.hash.value) for f in files if f.hash is not None}


def _matches_record(path: Path, recorded: tuple[str, str]) -> bool:
    mode, value = recorded
    try:
        digest = hashlib.new(mode, path.read_bytes()).digest()
    except ValueError:  # a hash name this Python lacks: nothing to check against
        return True
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == value


@attrs.frozen
class Bundle:
    """The bundled networks of one distribution.

    ``adm_builder(flags)`` builds a card's ADM network (the cards with ``"flags"``); cards with ``"arch"``
    are :class:`~guidekit.extractors.small.SmallCNN` oracles and cards with ``"pca"``
    :class:`~guidekit.extractors.pca.PixelPCA` feature spaces. ``train_command`` with ``{model}`` (the
    name without ``prefix``) says how a checkout makes a missing card.
    """

    distribution: str
    weights: Path
    names: tuple[str, ...]
    adm_builder: Callable[[str], nn.Module]
    prefix: str
    train_command: str

    def _check_name(self, name: str) -> None:
        if name not in self.names:
            raise UnknownComponentError(f"no bundled model {name!r} in {self.distribution}; bundled: {', '.join(self.names)}")

    def card(self, name: str) -> dict[str, Any]:
        """The card as stored (a fresh copy; file names relative to the weights folder), checked against the
        distribution's ``RECORD`` where the installer wrote one."""
        self._check_name(name)
        path = self.weights / f"{name}.json"
        command = self.train_command.format(model=name.removeprefix(self.prefix))
        if not path.is_file():
            raise CheckpointError(
                f"the card of {name} is missing from {self.weights}: this installation of {self.distribution} is "
                f"incomplete; reinstall it, or in a checkout make it with: {command}")
        recorded = recorded_hashes(self.distribution).get(path.resolve())
        if recorded is not None and not _matches_record(path, recorded):
            dist = self.distribution
            raise CheckpointError(
                f"{path} is not the card {dist} installed (its sha256 differs from the installer's RECORD): it was "
                "edited or damaged, and a card says how its weights are used (architecture, diffusion process, null "
                f"label); reinstall it: pip install --force-reinstall {dist}")
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read the card {path} ({exc}): it is damaged; reinstall {self.distribution}, "
                                  f"or in a checkout make it again with: {command}") from None
        if not isinstance(card, dict):
            raise CheckpointError(f"the card {path} is damaged (no JSON object); reinstall {self.distribution}, or in "
                                  f"a checkout make it again with: {command}")
        return card

    def resolved_card(self, name: str) -> dict[str, Any]:
        """The card with the files it names resolved to paths in the weights folder."""
        card = self.card(name)
        split = card.get("split")
        if isinstance(split, dict):
            for part in split.values():
                if isinstance(part, dict) and part.get("file"):
                    part["path"] = str(self.weights / part["file"])
            heldout = split.get("heldout")
            if isinstance(heldout, dict) and heldout.get("path"):
                card["reference_batch"] = heldout["path"]
        return card

    def components(self, names: tuple[str, ...], summaries: dict[str, str]) -> list[Any]:
        """``Component`` records of ``names`` (for a plugin's ``guidekit_networks``/``guidekit_extractors``)."""
        import functools

        from .component import Component

        return [Component(name, functools.partial(self.load, name), summaries[name]) for name in names]

    def hooks(self, networks: tuple[str, ...], extractors: tuple[str, ...],
              summaries: dict[str, str]) -> tuple[Callable[[], list[Any]], Callable[[], list[Any]]]:
        """The ``guidekit_networks`` and ``guidekit_extractors`` hook implementations of a plugin's entry point."""
        from .hookspecs import hookimpl

        @hookimpl
        def guidekit_networks() -> list[Any]:
            return self.components(networks, summaries)

        @hookimpl
        def guidekit_extractors() -> list[Any]:
            return self.components(extractors, summaries)

        return guidekit_networks, guidekit_extractors

    def build(self, info: dict[str, Any]) -> nn.Module:
        """The (untrained) architecture a card describes."""
        if "flags" in info:
            return self.adm_builder(info["flags"])
        if "pca" in info:
            from .extractors.pca import PixelPCA

            return PixelPCA(**info["pca"])
        from .extractors.small import SmallCNN

        return SmallCNN(**info["arch"])

    def load(self, name: str, path: str | os.PathLike[str] | None = None, *,
             device: str | torch.device = "cpu") -> nn.Module:
        """The bundled network ``name`` in eval mode, weights checked against ``card["sha256"]``.

        ``path`` loads other weights of the same architecture (e.g. your own retrained file) instead;
        then the sha256 is not checked and the card records the path.
        """
        from safetensors.torch import load_file

        from .devices import as_device

        info = self.resolved_card(name)
        device = as_device(device, allow_meta=True)
        file = Path(path) if path is not None else self.weights / f"{name}.safetensors"
        if file.is_dir():
            raise CheckpointError(f"weights path {file} of {name} is a folder; give the .safetensors file inside it")
        if not file.is_file():
            raise CheckpointError(f"weights file {file} of {name} not found")
        if path is None and not isinstance(info.get("sha256"), str):
            raise CheckpointError(f"the card of {name} records no sha256 of its weights, so {file} cannot be checked: "
                                  f"the card is damaged; reinstall {self.distribution}")
        if path is None and sha256(file) != info["sha256"]:
            raise CheckpointError(f"{file} does not match the sha256 in its card: the file is damaged; "
                                  f"reinstall {self.distribution}")
        model = self.build(info)
        try:
            state = load_file(str(file))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for foreign or damaged files
            raise CheckpointError(f"cannot read {file} as .safetensors ({type(exc).__name__}: {exc}); the bundled "
                                  "models load safetensors files, e.g. guidekit.training.export_weights(state, "
                                  "'w.safetensors')") from None
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # torch lists every key: keep the first of each kind, on one line
            detail = "; ".join(line.strip()[:200] + ("…" if len(line.strip()) > 200 else "")
                               for line in str(exc).splitlines()[1:4])
            raise CheckpointError(f"{file} does not fit the {name} architecture ({detail}); give weights saved from "
                                  f"a {name} network") from None
        model.card = copy.deepcopy(info) if path is None else {**info, "weights": str(file), "sha256": sha256(file)}
        model.card["role"] = "diffusion" if "unet" in name else "classifier"  # what guidekit sample checks --model against
        return model.to(device).eval()

    def cards_table(self, names: tuple[str, ...] | None = None) -> str:
        """The cards of ``names`` (default: all) as a reStructuredText table (e.g. docs/bundled_cards.rst)."""
        rows = [("model", "architecture", "parameters", "training", "held-out accuracy", "trained on, time")]
        for name in names or self.names:
            c = self.card(name)
            metrics = c.get("metrics", {})
            by_t = next((v for k, v in metrics.items() if k.endswith("accuracy_by_t")), None)
            clean = next((v for k, v in metrics.items() if k.endswith("accuracy") or k.startswith("test_accuracy")), None)
            if by_t is not None:
                acc = ", ".join(f"t={t}: {a:.3f}" for t, a in by_t.items())
            elif clean is not None:
                acc = f"clean: {clean:.3f}"
            else:
                acc = "-"
            tr = c.get("training", {})
            what = (f"{tr.get('loss', 'hybrid')} {tr.get('loss_params') or ''}".strip() if "classifier" in name else
                    "hybrid loss" + (f", label dropout {tr['class_dropout']}" if tr.get("class_dropout") else "")) \
                if "flags" in c else f"CE, {tr.get('epochs')} epochs, ±1 px shifts"
            steps = (f"{c['steps']} steps × {tr['batch_size']}, lr {tr['lr']}, seed {c['seed']}" if "steps" in c
                     else f"seed {c['seed']}")
            rows.append((f"``{name}``", c["architecture"], f"{c['parameters']:,}", f"{what}; {steps}", acc,
                         f"{c['trained_on']}, {c['train_seconds']:.0f} s"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        line = " ".join("=" * w for w in widths)
        fmt = lambda r: " ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
        return "\n".join([line, fmt(rows[0]), line, *map(fmt, rows[1:]), line]) + "\n"
