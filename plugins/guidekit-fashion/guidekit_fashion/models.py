"""The bundled fashion32 networks: cards, weights and the held-out reference (loaded by :mod:`guidekit.bundled`)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from guidekit.bundled import Bundle

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: 2,000 of the 10,000 Fashion-MNIST test images (never trained on) as an ADM-layout batch: the FD/KID reference
REFERENCE = WEIGHTS / "fashion32-reference.npz"
NAMES = ("fashion32-unet", "fashion32-unet-cond", "fashion32-classifier-ce", "fashion32-classifier-ect",
         "fashion32-oracle")
#: feature spaces that are not networks
FEATURES = ("fashion32-pca",)
SUMMARIES = {
    "fashion32-unet": "unconditional diffusion model of fashion32 (32x32 Fashion-MNIST), ADM UNet, learned sigma",
    "fashion32-unet-cond": "class-conditional diffusion model of fashion32; label 10 is the null label (for CFG)",
    "fashion32-classifier-ce": "noise-aware fashion32 classifier trained with cross-entropy",
    "fashion32-classifier-ect": "noise-aware fashion32 classifier trained with ECT (eta 0.2, paper Eq. 12)",
    "fashion32-oracle": "clean-image fashion32 classifier (other architecture) to judge samples; never guides",
    "fashion32-pca": "top 32 principal components of the fashion32 training pixels: a feature space no classifier learnt",
}


def _adm(flags: str) -> nn.Module:
    import guidekit_adm as adm

    return adm.create_model(flags)


BUNDLE = Bundle("guidekit-fashion", WEIGHTS, NAMES + FEATURES, _adm, "fashion32-",
                "python scripts/train_fashion32.py {model}")


#: the model card of a bundled model (a fresh copy)
card = BUNDLE.card
#: the bundled model in eval mode, weights checked against card["sha256"] (``path``: other weights of its architecture)
load = BUNDLE.load


def cards_table() -> str:
    """The cards of the bundled networks as a reStructuredText table."""
    return BUNDLE.cards_table(NAMES)
