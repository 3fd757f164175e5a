"""Bundled models trained by guidekit on mnist16 (16x16 MNIST digits), as ``network`` components.

``gk.create("network", "mnist16-unet")`` returns an eval-mode module with its weights loaded and a
``card`` dict (data, preprocessing, architecture, training command and seed, held-out metrics,
sha256 of the weights, and ``card["diffusion"]`` for ``gk.GaussianDiffusion.create``).
"""

from __future__ import annotations

from .models import NAMES, card, cards_table, load

__all__ = ["NAMES", "card", "cards_table", "load"]
