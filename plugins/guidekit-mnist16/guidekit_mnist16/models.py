"""The bundled mnist16 networks: cards, weights and the held-out reference (loaded by :mod:`guidekit.bundled`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from guidekit.bundled import Bundle

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: the 500 held-out mnist16 images (Dataset.split(500, seed=0)) as an ADM-layout batch: the FD/KID reference
REFERENCE = WEIGHTS / "mnist16-heldout.npz"
NAMES = ("mnist16-unet", "mnist16-unet-cond", "mnist16-classifier-ce", "mnist16-classifier-ect", "mnist16-oracle")
#: feature spaces (extractors) that are not networks
EXTRACTORS = ("mnist16-pca",)
SUMMARIES = {
    "mnist16-unet": "unconditional diffusion model of mnist16 (16x16 digits), ADM UNet, learned sigma",
    "mnist16-unet-cond": "class-conditional diffusion model of mnist16; label 10 is the null label (for CFG)",
    "mnist16-classifier-ce": "noise-aware mnist16 classifier trained with cross-entropy",
    "mnist16-classifier-ect": "noise-aware mnist16 classifier trained with ECT (eta 0.2, paper Eq. 12)",
    "mnist16-oracle": "clean-image mnist16 classifier (other architecture) to judge samples; never guides",
    "mnist16-pca": "top 32 principal components of the mnist16 training pixels: a feature space no classifier learnt",
}


def _adm(flags: str) -> nn.Module:
    import guidekit_adm as adm

    return adm.create_model(flags)


BUNDLE = Bundle("guidekit-mnist16", WEIGHTS, NAMES + EXTRACTORS, _adm, "mnist16-",
                "python scripts/train_mnist16.py {model}")


def card(name: str) -> dict[str, Any]:
    """The model card of a bundled model (a fresh copy)."""
    return BUNDLE.card(name)


def load(name: str, path: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu") -> nn.Module:
    """The bundled model ``name`` in eval mode, weights checked against ``card["sha256"]``.

    ``path`` loads other weights of the same architecture (e.g. your own retrained file) instead;
    then the sha256 is not checked and the card records the path.
    """
    return BUNDLE.load(name, path, device=device)


def cards_table() -> str:
    """The cards of all bundled models as a reStructuredText table (docs/bundled_cards.rst)."""
    return BUNDLE.cards_table(NAMES)
