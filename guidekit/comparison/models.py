"""Loading what a comparison needs: the diffusion model, classifiers, the diffusion process, the judge.

Networks come from :func:`guidekit.load_network`: registered names (bundled models come with weights
and a ``card``), a plugin's specs (guidekit-adm: release names and flag strings) and training folders;
a checkpoint path is loaded strictly with ``weights_only=True``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from .. import networks
from ..diffusion import GaussianDiffusion
from ..errors import InvalidParameterError, LabelError, UnknownComponentError


def load_network(name: str, path: str | Path | None, device: torch.device, what: str) -> torch.nn.Module:
    """``--model``/``--classifier`` through :func:`guidekit.load_network` (the one way in for every network);
    a network without weights (an architecture, no ``--{what}-path``) is run with a warning."""
    try:
        net = networks.load_network(name, path, device)
    except UnknownComponentError as exc:
        raise UnknownComponentError(f"--{what} {name!r}: {exc}") from None
    if net.card.get("random_weights"):
        print(f"guidekit compare: warning: --{what} {name!r} has no bundled weights and no --{what}-path; "
              "it runs with random weights", file=sys.stderr)
    return net


def card_of(net: Any) -> dict[str, Any]:
    card = getattr(net, "card", None)
    return dict(card) if isinstance(card, dict) else {}


def diffusion_for(model: Any, respacing: str | None) -> GaussianDiffusion:
    """The diffusion process ``model`` was trained with (:meth:`GaussianDiffusion.from_model`), respaced;
    ``respacing=None`` takes the card's respacing, else an ADM network's flag setting, else all steps."""
    if respacing is None:
        respacing = default_respacing(model)
    return GaussianDiffusion.from_model(model, respacing=respacing)


def default_respacing(model: Any) -> str:
    """The card's respacing, else its ``suggested`` one (an ADM release's README), else all steps."""
    card = card_of(model)
    for settings in (card.get("diffusion"), card.get("suggested")):
        if isinstance(settings, dict) and settings.get("respacing") is not None:
            return str(settings["respacing"])
    return ""


def explain_respacing(model: Any, respacing: str, steps: int) -> str:
    """Why ``compare`` took ``respacing`` (from :func:`default_respacing`) when ``--respacing`` was not given."""
    if "respacing" in (card_of(model).get("diffusion") or {}):
        return (f"no --respacing given: using {respacing!r} from the model card (card['diffusion']['respacing']); "
                "pass --respacing to choose another")
    if respacing:
        return (f"no --respacing given: using {respacing!r}, the respacing the release's README suggests for this "
                "model; pass --respacing ddim25 for a faster run")
    return (f"no --respacing given and the model card names none: sampling all {steps} steps, which is slow; pass "
            "--respacing ddim25 (25 DDIM steps) or --respacing 100 for a faster run")


def image_shape(model: Any, reference_shape: tuple[int, ...] | None) -> tuple[int, int, int]:
    """(C, H, W) of the model's samples: its attributes, its card, or the reference images (NHWC)."""
    card = card_of(model)
    size = getattr(model, "image_size", None) or card.get("image_size")
    channels = (getattr(model, "image_channels", None) or getattr(model, "in_channels", None)
                or card.get("channels") or card.get("in_channels"))
    if (size is None or channels is None) and reference_shape is not None:
        size = size or reference_shape[1]
        channels = channels or reference_shape[3]
    if size is None or channels is None:
        raise InvalidParameterError("cannot tell the model's image size/channels; give a --reference batch")
    return int(channels), int(size), int(size)


def num_classes_of(classifier: Any, shape: tuple[int, int, int], device: torch.device, name: str) -> int:
    """Number of classes of a classifier, from one forward pass on a zero image at t = 0 (or without t:
    a clean classifier, as ``x0-classifier`` guidance takes)."""
    x = torch.zeros(1, *shape, device=device)
    with torch.no_grad():
        try:
            logits = classifier(x, torch.zeros(1, dtype=torch.int64, device=device))
        except TypeError:
            logits = classifier(x)
    if logits.ndim != 2:
        raise InvalidParameterError(f"--classifier {name!r} returned shape {tuple(logits.shape)}; expected (B, K)")
    return int(logits.shape[1])


def load_judge(name: str, weights: str | Path | None, device: torch.device) -> Any:
    """The judge: an ``"extractor"`` component (``inception`` is short for ``inception-v3``)."""
    from ..registry import available, create

    if name == "inception" and "inception" not in available("extractor"):
        name = "inception-v3"
    params: dict[str, Any] = {"device": str(device)}
    if weights is not None:
        params["path"] = str(weights)
    judge = create("extractor", name, **params)
    if not hasattr(judge, "extract"):
        raise InvalidParameterError(f"--judge {name!r} has no extract(images) method")
    return judge


def real_labels(guidance: Any, model: Any, name: str) -> int:
    """How many labels a guidance without a classifier asks for: those below the null label
    (``guidance.num_labels(model)``, e.g. 10 of an 11-class CFG model), else the model's classes."""
    if getattr(model, "num_classes", None) is None:
        raise InvalidParameterError(
            f"--guidance {name} uses no classifier, so the labels come from the model, but the model is not "
            "class-conditional; give a class-conditional --model (e.g. mnist16-unet-cond)")
    labels_of = getattr(guidance, "num_labels", None)
    if labels_of is None:
        return int(model.num_classes)
    try:
        return int(labels_of(model))
    except LabelError:  # its message says "pass y=...", a Python argument compare has no equivalent of
        null = guidance.null_label_of(model)
        raise InvalidParameterError(
            f"--guidance {name}: the null label {null} (--guidance-param null_label) is not the model's last class "
            f"({model.num_classes - 1}), so the real labels are unknown and compare cannot ask for labels 0..K-1 "
            "below it; use a model trained with its last class as the null label, or drop --guidance-param "
            "null_label where the model card names it") from None
