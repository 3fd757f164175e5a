"""The bundled mnist16 networks: cards, weights and the held-out reference (loaded by :mod:`guidekit.bundled`)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from guidekit.bundled import Bundle

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: the 500 held-out mnist16 images (Dataset.split(500, seed=0)) as an ADM-layout batch: the FD/KID reference
REFERENCE = WEIGHTS / "mnist16-heldout.npz"
NAMES = ("mnist16-unet", "mnist16-unet-cond", "mnist16-classifier-ce", "mnist16-classifier-ect", "mnist16-oracle")
#: feature spaces that are not networks
FEATURES = ("mnist16-pca",)
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


BUNDLE = Bundle("guidekit-mnist16", WEIGHTS, NAMES + FEATURES, _adm, "mnist16-",
                "python scripts/train_mnist16.py {model}")


#: the model card of a bundled model (a fresh copy)
card = BUNDLE.card
#: the bundled model in eval mode, weights checked against card["sha256"] (``path``: other weights of its architecture)
load = BUNDLE.load


def cards_table() -> str:
    """The cards of the bundled networks as a reStructuredText table."""
    return BUNDLE.cards_table(NAMES)
