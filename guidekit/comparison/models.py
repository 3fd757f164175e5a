"""Loading what a comparison needs: the diffusion model, classifiers, the diffusion process, the judge.

Networks are ``"network"`` components by name (bundled models come with weights and a ``card``);
ADM release names and reference flag strings (``--model="--image_size 64 ..."``) come from
guidekit-adm, and a checkpoint path is loaded strictly with ``weights_only=True``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from ..diffusion import GaussianDiffusion
from ..errors import CheckpointError, InvalidParameterError, UnknownComponentError


def _adm_config(name: str) -> Any | None:
    """The guidekit-adm ModelConfig of a release name or flag string; None if it is neither (or no plugin)."""
    try:
        from guidekit_adm.factory import resolve_config
        from guidekit_adm.releases import RELEASES
    except ImportError:
        if name.lstrip().startswith("--"):
            raise InvalidParameterError(f"{name!r} is an ADM flag string: pip install guidekit-adm") from None
        return None
    if name.lstrip().startswith("--") or (name[:-3] if name.endswith(".pt") else name) in RELEASES:
        return resolve_config(name)
    return None


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(f"reading {path.name} needs the safetensors package: pip install safetensors") from None
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise CheckpointError(f"cannot read {path} ({type(exc).__name__}); expected torch.save(model.state_dict())") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    return state


def _factory_takes_path(name: str) -> bool:
    """Whether the network component's factory loads weights itself from ``path=`` (bundled models do)."""
    import inspect

    from ..registry import describe

    for comp in describe("network"):
        if comp.name == name:
            try:
                return "path" in inspect.signature(comp.factory).parameters
            except (TypeError, ValueError):
                return False
    return False


def load_network(name: str, path: str | Path | None, device: torch.device, what: str) -> torch.nn.Module:
    """A network by component name, ADM release name or flag string, with ``path`` loaded strictly."""
    config = _adm_config(name)
    if config is not None:
        if path is not None:
            from guidekit_adm import load_checkpoint

            net = load_checkpoint(config, path, device=device)
        else:
            from guidekit_adm.factory import create_model

            net = create_model(config, device=device)
            net.adm_config = config
    else:
        from ..registry import create

        takes_path = path is not None and _factory_takes_path(name)
        try:
            net = create("network", name, **({"path": str(path)} if takes_path else {}))
        except UnknownComponentError as exc:
            raise UnknownComponentError(f"--{what} {name!r}: {exc}") from None
        if path is not None and not takes_path:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"--{what}-path {path} does not exist")
            state = _read_state(path)
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"{path} does not fit network {name!r}: {str(exc).splitlines()[0]}") from None
    if path is None and (config is not None or getattr(net, "card", None) is None):  # ADM nets carry a card too
        print(f"guidekit compare: warning: --{what} {name!r} has no bundled weights and no --{what}-path; "
              "it runs with random weights", file=sys.stderr)
    return net.to(device).eval()


def card_of(net: Any) -> dict[str, Any]:
    card = getattr(net, "card", None)
    return dict(card) if isinstance(card, dict) else {}


def diffusion_for(model: Any, respacing: str | None) -> GaussianDiffusion:
    """The diffusion process ``model`` was trained with (:meth:`GaussianDiffusion.from_model`), respaced;
    ``respacing=None`` takes the card's respacing, else an ADM network's flag setting, else all steps."""
    if respacing is None:
        adm = getattr(model, "adm_config", None)
        respacing = str((card_of(model).get("diffusion") or {}).get("respacing", adm.diffusion.respacing if adm else ""))
    return GaussianDiffusion.from_model(model, respacing=respacing)


def default_respacing(model: Any) -> str:
    settings = card_of(model).get("diffusion") or {}
    if "respacing" in settings:
        return str(settings["respacing"])
    config = getattr(model, "adm_config", None)  # ADM cards name no respacing: the release README's suggestion
    return str(getattr(config, "suggested_respacing", "") or "") if config is not None else ""


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
    return int(labels_of(model) if labels_of is not None else model.num_classes)
