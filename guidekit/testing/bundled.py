"""Checks every bundled set of networks must pass (guidekit-mnist16, guidekit-fashion): one helper, both suites."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import guidekit as gk

#: keys every bundled network's card holds
CARD_KEYS = {"name", "data", "preprocessing", "split", "command", "guidekit_version", "torch_version", "trained_on",
             "architecture", "training", "seed", "parameters", "train_seconds", "sha256"}


def check_bundled_network(name: str, weights: Path, reference: Path) -> Any:
    """Load ``name`` as a component and check its card: keys, weights sha256, parameter count, the recorded
    split (training fingerprints and held-out ``reference``, with their sha256) and JSON-ability.
    Returns the model."""
    assert name in gk.available("network")
    model = gk.create("network", name)
    assert not model.training
    card = model.card
    assert CARD_KEYS <= set(card), CARD_KEYS - set(card)
    assert card["name"] == name and "pad 2" in card["preprocessing"]
    assert card["sha256"] == hashlib.sha256((weights / f"{name}.safetensors").read_bytes()).hexdigest()
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    split = card["split"]
    assert card["reference_batch"] == str(reference) == split["heldout"]["path"]
    for part in ("train", "heldout"):
        assert split[part]["sha256"] == hashlib.sha256(Path(split[part]["path"]).read_bytes()).hexdigest()
    assert json.dumps(card)
    return model
