"""Bundled models trained by guidekit on fashion32 (Fashion-MNIST padded to 32x32), as ``network`` components.

``gk.create("network", "fashion32-unet")`` returns an eval-mode module with its weights loaded and a
``card`` dict (data, preprocessing, training split, architecture, training command and seed, test
metrics, sha256 of the weights, and ``card["diffusion"]`` for ``gk.GaussianDiffusion.create``).
"""

from __future__ import annotations

from .models import NAMES, card, cards_table, load

__version__ = "0.2.0"
__all__ = ["NAMES", "card", "cards_table", "load"]
