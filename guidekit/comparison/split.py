"""Which images a network was trained on, and the check that a reference holds none of them.

A bundled network's card records its training split as per-image fingerprints: the first 8 bytes of
the sha256 of each training image's uint8 H×W×C bytes (as :func:`guidekit.io.to_uint8` makes them,
the way samples are judged), read as a little-endian uint64, shipped as a ``.npy`` file named in
``card["split"]["train"]`` with its own sha256. A reference that shares an image with the training
data of the model, a classifier, the judge or a feature space puts the metric's floor below what
unseen images reach (the judge has seen those images), so :func:`check_reference` refuses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GuidekitError

#: the compare option that accepts an overlapping reference anyway
OVERRIDE_FLAG = "--allow-reference-overlap"


class ReferenceOverlapError(GuidekitError, ValueError):
    """The FD/KID reference holds images that a network or feature space of the comparison was trained on."""


def fingerprints(images: Any) -> np.ndarray:
    """uint64 fingerprint of each uint8 N×H×W×C image (first 8 bytes of its sha256, little-endian)."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise ValueError(f"fingerprints take uint8 N×H×W×C images (guidekit.io.to_uint8), got {arr.dtype} {arr.shape}")
    out = np.empty(len(arr), dtype=np.uint64)
    for i, image in enumerate(arr):
        out[i] = int.from_bytes(hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()[:8], "little")
    return out


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def train_fingerprints(card: Mapping[str, Any]) -> np.ndarray | None:
    """The training fingerprints a card's ``split`` names (``None`` when it names none), sha256-checked."""
    split = card.get("split")
    train = split.get("train") if isinstance(split, Mapping) else None
    if not isinstance(train, Mapping) or not train.get("path"):
        return None
    path = Path(train["path"])
    if not path.is_file():
        raise GuidekitError(f"{card.get('name', 'a network')}'s card names training fingerprints {path}, which do not "
                            "exist: the installation is incomplete; reinstall the distribution that ships it")
    if train.get("sha256") and sha256_file(path) != train["sha256"]:
        raise GuidekitError(f"{path} does not match the sha256 in {card.get('name', 'its')} card: the file is damaged; "
                            "reinstall the distribution that ships it")
    return np.load(path, allow_pickle=False)


def check_reference(reference: np.ndarray | None, cards: Iterable[tuple[str, Mapping[str, Any]]], *,
                    allow: bool = False, where: str = "the reference") -> dict[str, int]:
    """Images of ``reference`` (its fingerprints) found in each card's training split: ``{role: count}``.

    ``cards``: (role, card) pairs such as ("model mnist16-unet", card). Raises
    :class:`ReferenceOverlapError` when any count is positive, unless ``allow``. Cards without a
    recorded split and references without images (``reference=None``) are not checked.
    """
    found: dict[str, int] = {}
    if reference is None:
        return found
    for role, card in cards:
        train = train_fingerprints(card)
        if train is not None:
            found[role] = int(np.isin(reference, train).sum())
    bad = {role: n for role, n in found.items() if n}
    if bad and not allow:
        listing = "; ".join(f"{n} of its {len(reference)} images are in the training data of the {role}"
                            for role, n in bad.items())
        raise ReferenceOverlapError(
            f"{where} overlaps training data ({listing}): FD/KID against it would reward reproducing training "
            "images. Use the held-out reference the model card names (the default), or pass "
            f"{OVERRIDE_FLAG} to measure against it anyway")
    return found
