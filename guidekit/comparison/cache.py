"""The files a comparison caches in its ``--out`` folder, checked whenever they are read back.

A cell's features (``cells/<key>.npz``), its metrics, its pilot accuracies and its bootstrap replicates
are found again by name; before one is used, its content is checked, and a damaged or replaced file is
computed again alone (with a warning naming it), never used and never a crash:

* JSON caches carry ``"digest"``, the sha256 of their canonical JSON without it (:func:`write_json`,
  :func:`read_json`); files written before guidekit recorded it are read as they are;
* a cell's ``.json`` records ``"features_sha256"``, the sha256 of its ``.npz`` (:func:`features_intact`);
* arrays are ``.npz`` files, whose zip entries carry a CRC-32 that numpy checks on reading (:func:`read_npz`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..identity import file_sha256
from ..io import atomic_write
from .grid import canonical

DIGEST_KEY = "digest"
#: what reading a damaged .npz raises (a bad CRC, a truncated or garbled member, a missing array)
NPZ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError)


def warn_damaged(path: Path, why: str, what: str = "it is computed again") -> None:
    """One stderr line: ``path`` was not used because it is damaged or replaced."""
    print(f"guidekit compare: warning: {path} is damaged or was replaced ({why}); {what}", file=sys.stderr)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(data).encode()).hexdigest()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically with its ``"digest"`` (read back by :func:`read_json`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        json.dump({**data, DIGEST_KEY: _digest(data)}, fh)


def read_json(path: Path) -> dict[str, Any] | None:
    """A cache file written by :func:`write_json` (without its digest); None when it is missing, or (with a
    warning) unreadable or not what was written."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        warn_damaged(path, f"unreadable JSON: {exc}")
        return None
    if not isinstance(data, dict):
        warn_damaged(path, "not a JSON object")
        return None
    recorded = data.pop(DIGEST_KEY, None)
    if recorded is not None and recorded != _digest(data):
        warn_damaged(path, "its content does not match the digest it was written with")
        return None
    return data


def features_intact(cell: dict[str, Any], path: Path) -> bool:
    """Whether the features file ``path`` of a cached cell exists and is the one its ``.json`` recorded
    (a damaged or replaced one gets a warning)."""
    if not path.is_file():
        return False
    recorded = cell.get("features_sha256")
    if recorded is not None and file_sha256(path) != recorded:
        warn_damaged(path, "its sha256 differs from the one its cell recorded")
        return False
    return True


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of ``path`` (CRC-checked); None when it is missing, or (with a warning) damaged."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except NPZ_ERRORS as exc:
        warn_damaged(path, f"{type(exc).__name__}: {exc}")
        return None
