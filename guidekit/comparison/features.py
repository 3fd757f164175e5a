"""The feature spaces a comparison measures FD and KID in: the judge's own, and others that learnt no classes.

``oracle`` is always the judge's ``pool`` features (the judge also gives the accuracy). Other spaces
come from ``features`` (``["pca=mnist16-pca"]``, or ``{"pca": extractor}``), else from the judge's card
(``card["features"]``: a bundled oracle names the pixel PCA of its data set). Each space is identified
by its component name and the sha256 its card records (or, for an object, of its weights), so a
replaced extractor is another feature space in every cache.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from ..errors import InvalidParameterError
from .reference import JUDGE_SPACE


@attrs.frozen(eq=False)
class FeatureSpace:
    label: str
    name: str
    ident: dict[str, Any]
    extractor: Any

    @property
    def card(self) -> dict[str, Any]:
        card = getattr(self.extractor, "card", None)
        return dict(card) if isinstance(card, dict) else {}


def identity(name: str, obj: Any) -> dict[str, Any]:
    """``{"name", "sha256"}``: the card's weights sha256, else a digest of the module's tensors."""
    card = getattr(obj, "card", None)
    if isinstance(card, dict) and card.get("sha256"):
        return {"name": name, "sha256": card["sha256"]}
    if isinstance(obj, torch.nn.Module):
        digest = hashlib.sha256()
        for key, value in sorted(obj.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return {"name": name, "sha256": digest.hexdigest()}
    return {"name": name}


#: a feature space's label names files and CSV columns (fd_LABEL): letters, digits, '_' and '-'
_LABEL = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")


def _check_label(label: Any) -> None:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise InvalidParameterError(f"feature space label {label!r} (--features LABEL=EXTRACTOR) must be 1-40 letters, "
                                    "digits, '_' or '-' (it names cache files and CSV columns), e.g. pca")


def _parse(features: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(features, Mapping):
        for label in features:
            _check_label(label)
        return dict(features)
    out: dict[str, Any] = {}
    for item in features:
        label, sep, name = str(item).partition("=")
        label, name = label.strip(), name.strip()
        if not sep or not label or not name:
            raise InvalidParameterError(f"--features takes LABEL=EXTRACTOR (e.g. pca=mnist16-pca), got {item!r}")
        _check_label(label)
        if label in out:
            raise InvalidParameterError(f"--features names {label!r} twice; give each feature space once")
        out[label] = name
    return out


def feature_spaces(judge_name: str, judge: Any, judge_ident: dict[str, Any],
                   features: Sequence[str] | Mapping[str, Any] | None, device: torch.device) -> dict[str, FeatureSpace]:
    """``{label: FeatureSpace}``, the judge's first (label ``oracle``)."""
    from ..registry import create

    card = getattr(judge, "card", None)
    wanted = _parse(features) if features is not None else dict((card or {}).get("features") or {})
    if JUDGE_SPACE in wanted:
        raise InvalidParameterError(f"the feature space {JUDGE_SPACE!r} is the judge's own (--judge); give the others "
                                    "other labels, e.g. --features pca=mnist16-pca")
    spaces = {JUDGE_SPACE: FeatureSpace(JUDGE_SPACE, judge_name, judge_ident, judge)}
    for label, what in wanted.items():
        if isinstance(what, str):
            try:
                obj = create("extractor", what, device=str(device))
            except FileNotFoundError as exc:  # its weights: compare passes no path to a --features space
                raise InvalidParameterError(
                    f"--features {label}={what}: the extractor needs a weights file that guidekit compare cannot pass "
                    f"to a --features space ({str(exc).split('. ')[0]}); give it through the environment where the "
                    "extractor reads one (GUIDEKIT_INCEPTION_WEIGHTS=PATH for inception-v3), or make it the judge: "
                    f"--judge {what} --judge-weights PATH") from None
            name = what
        else:
            obj, name = what, type(what).__name__
        if not hasattr(obj, "extract"):
            raise InvalidParameterError(f"feature space {label!r}: {name} has no extract(images) method")
        spaces[label] = FeatureSpace(label, name, identity(name, obj), obj)
    return spaces
