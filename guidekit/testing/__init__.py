"""Helpers for testing guidekit and plugins: golden data, contract test bases, Hypothesis strategies.

Importing this package needs pytest (contracts) and Hypothesis (strategies) only when those
sub-modules are imported.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def golden_dir() -> Path:
    """``$GUIDEKIT_GOLDEN`` or ``../shared/golden`` beside the repository; raises if missing."""
    here = Path(__file__).resolve().parents[2]
    path = Path(os.environ.get("GUIDEKIT_GOLDEN", here.parent / "shared" / "golden"))
    if not path.is_dir():
        raise FileNotFoundError(f"golden fixtures not found at {path}; set GUIDEKIT_GOLDEN to the golden/ folder")
    return path


def load_golden(name: str) -> dict:
    """A golden ``.pt`` file, loaded with ``weights_only=True``."""
    return torch.load(golden_dir() / name, weights_only=True)
