"""One way in for every network: :func:`load_network` turns a string into a network with a ``card``.

A spec is resolved, in this order, by

1. the plugins' ``guidekit_resolve_network`` hooks (guidekit-adm: ADM release names and reference flag
   strings; any model family can add its own);
2. a registered ``network`` component name (bundled models come with their weights; ``path`` loads
   other weights strictly; ``params`` are the component's constructor arguments);
3. a training output folder (``card.json`` and ``model.safetensors``, as ``guidekit train-*`` writes
   them): the architecture is rebuilt from the card through 1-2 and the weights are loaded strictly.

The commands (``sample``, ``train-*``, ``compare``, ``evaluate``'s networks, the demo) get their networks
here only, so a model family plugged in through the hook works with all of them.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .devices import as_device
from .errors import CheckpointError, GuidekitError, IdentityError, InvalidParameterError, UnknownNetworkError

#: the hook every model family implements
HOOK = "guidekit_resolve_network"
#: what a training output folder holds
CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"

__all__ = ["CARD_FILE", "CHECKED_FIELDS", "WEIGHTS_FILE", "card_digests", "image_shape", "load_network", "read_card", "read_state", "weights_sha256"]


def load_network(spec: str | os.PathLike[str], path: str | os.PathLike[str] | None = None,
                 device: str | torch.device | None = None, *, params: Mapping[str, Any] | None = None,
                 fast: bool = False) -> torch.nn.Module:
    """The network named by ``spec``, on ``device`` (default CPU) in eval mode, with a ``card`` dict.

    ``spec`` is a release name or flag string a plugin resolves, a registered ``network`` name, or a
    training output folder. ``path`` is a weights file for it (``.pt``/``.pth`` read with
    ``weights_only=True``, or ``.safetensors``), loaded strictly. ``params`` are constructor
    arguments and loading options of the architecture (``--model-param``). ``device="meta"`` builds
    the architecture without reading any weights, to look at its card cheaply. ``fast`` tells the
    resolver the network runs on the fast path (see :mod:`guidekit.fast`).

    >>> net = gk.load_network("mnist16-unet")              # doctest: +SKIP
    >>> net = gk.load_network("runs/unet")                 # doctest: +SKIP  (a guidekit train-diffusion --out)
    >>> net.card["diffusion"]                              # doctest: +SKIP
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidParameterError(f"a network is named by a non-empty string (a name, a flag string or a training "
                                    f"folder), got {spec!r}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"path must be the weights file (a str or Path), got {path!r}")
    if params is not None and not isinstance(params, Mapping):
        raise InvalidParameterError(f"params must be a dict of constructor arguments, got {params!r}")
    dev = as_device("cpu" if device is None else device, "device", allow_meta=True)
    params = dict(params or {})
    if (Path(spec) / CARD_FILE).is_file():
        _refuse_ambiguous(spec, bool(fast))
    net = _from_plugins(spec, path, dev, params, bool(fast))
    if net is None:
        from .registry import available

        if spec in available("network"):
            net = _from_component(spec, path, dev, params)
        elif (Path(spec) / CARD_FILE).is_file():
            net = _from_folder(Path(spec), path, dev, params, bool(fast))
        else:
            raise UnknownNetworkError(_unknown_message(spec))
    if not isinstance(net, torch.nn.Module):
        raise InvalidParameterError(f"network {spec!r} resolved to a {type(net).__name__}, not a torch.nn.Module")
    card = getattr(net, "card", None)
    net.card = dict(card) if isinstance(card, Mapping) else {}
    return net.to(dev).eval()


def _from_plugins(spec: str, path: Any, device: torch.device, params: dict[str, Any], fast: bool) -> Any:
    """Ask every plugin's resolver, last registered first (pluggy's order); None when all decline."""
    from .registry import default_registry

    args = {"spec": spec, "path": None if path is None else os.fspath(path), "device": str(device),
            "params": dict(params), "fast": fast}
    for dist, impl in reversed(list(default_registry().manager.implementations(HOOK))):
        try:
            net = impl.function(*[args[name] for name in impl.argnames])
        except (GuidekitError, OSError, ImportError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - a resolver's bug is named with its distribution
            raise GuidekitError(f"the network resolver of {dist} failed on {spec!r} ({type(exc).__name__}: {exc}); "
                                f"this is a bug in {dist}, or the spec is not what it expects") from exc
        if net is None:
            continue
        if params and "params" not in impl.argnames:
            raise InvalidParameterError(f"{spec!r} is resolved by {dist}, which takes no constructor parameters; "
                                        f"drop {', '.join(f'{k}=' for k in params)}")
        return net
    return None


def _refuse_ambiguous(spec: str, fast: bool) -> None:
    """A training folder whose path is also a registered name or a plugin's spec would be shadowed silently."""
    from .registry import available

    if spec in available("network"):
        other = "a registered network (guidekit list network)"
    elif _from_plugins(spec, None, torch.device("meta"), {}, fast) is not None:
        other = "a network a plugin resolves (such as an ADM release name)"
    else:
        return
    raise InvalidParameterError(f"{spec!r} names both {other} and the training folder {Path(spec).resolve()}; write "
                                f"{os.path.join('.', spec)!r} (or the full path) for the folder, or rename it")


def _takes(factory: Any, name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def _from_component(name: str, path: Any, device: torch.device, params: dict[str, Any]) -> torch.nn.Module:
    """A registered ``network``: built with ``params``; ``path`` goes to its factory's ``path=`` (bundled models
    load and check their own weights) or is loaded strictly into the built network."""
    from .registry import create, default_registry

    factory = default_registry().get("network", name).factory
    load_here = path is not None and device.type != "meta"
    takes_path = load_here and _takes(factory, "path") and "path" not in params
    net = create("network", name, **params, **({"path": os.fspath(path)} if takes_path else {}))
    card = getattr(net, "card", None)
    if load_here and not takes_path:
        load_strictly(net, Path(path), f"network {name!r}")
    if not isinstance(card, Mapping):
        net.card = {"architecture": name}
        if path is None:  # an architecture without weights of its own
            net.card["random_weights"] = True
    return net


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``.pt``/``.pth`` file (``torch.load(weights_only=True)``;
    a ``{"state_dict": ...}`` wrapper is unwrapped)."""
    if path.is_dir():
        raise CheckpointError(f"weights path {path} is a folder; give the weights file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(f"reading {path.name} needs the safetensors package: pip install safetensors") from None
        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types for damaged files
            raise CheckpointError(f"cannot read {path} as .safetensors ({type(exc).__name__}: {exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise CheckpointError(f"cannot read {path} ({type(exc).__name__}); expected torch.save(model.state_dict())") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    return state


def load_strictly(net: torch.nn.Module, path: Path, what: str) -> None:
    """``net.load_state_dict(read_state(path), strict=True)``, a mismatch named in one line."""
    state = read_state(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise CheckpointError(f"{path} does not fit {what}: {lines[1] if len(lines) > 1 else lines[0]}") from None


def read_card(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``card.json`` of a training output folder."""
    file = Path(folder) / CARD_FILE
    try:
        card = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {file} ({exc}); a training folder's card.json is written by "
                              "guidekit train-diffusion / train-classifier") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{file} holds no JSON object")
    return card


#: what a training card says about how its weights are used; guidekit train-* records a digest of each
#: (``card["checked"]``), so that a hand edit of one (class names are free to edit) is refused on loading
CHECKED_FIELDS = ("role", "kind", "network", "constructor", "flags", "diffusion", "image_size", "channels",
                  "num_classes", "null_label", "weights_file", "sha256")


def card_digests(card: Mapping[str, Any]) -> dict[str, str]:
    """``{field: sha256 of its JSON}`` (first 16 hex digits) of the :data:`CHECKED_FIELDS` of a card (absent ones too)."""
    import hashlib

    return {field: hashlib.sha256(json.dumps(card.get(field), sort_keys=True, default=str).encode()).hexdigest()[:16]
            for field in CHECKED_FIELDS}


def _check_card(card: dict[str, Any], file: Path) -> None:
    """Refuse a card whose checked fields were edited after training (cards written before 0.3 record none)."""
    recorded = card.get("checked")
    if not isinstance(recorded, Mapping):
        return
    now = card_digests(card)
    edited = sorted(field for field, digest in recorded.items() if now.get(field, digest) != digest)
    if edited:
        raise IdentityError(f"{file} was edited after training: its {', '.join(repr(f) for f in edited)} "
                            f"differ{'s' if len(edited) == 1 else ''} from what guidekit train-* wrote beside these weights, and a network used with another process or architecture than "
                            "it was trained with gives wrong images. Restore card.json from a copy, or write it again "
                            "with the same guidekit train-* command and --resume (checkpoint.pt is needed)")


def _architecture(card: dict[str, Any], folder: Path) -> tuple[str, dict[str, Any]]:
    """(spec, params) that rebuild the trained architecture: ``card["network"]``, or the ADM flags older cards hold."""
    record = card.get("network")
    if isinstance(record, Mapping) and isinstance(record.get("spec"), str):
        return record["spec"], dict(record.get("params") or {})
    if isinstance(card.get("flags"), str):
        return card["flags"], {}
    raise CheckpointError(f"{folder / CARD_FILE} names no architecture (no 'network' entry); it was not written by "
                          "guidekit train-*. Load the weights with the architecture's name and path= (--model-path)")


def _from_folder(folder: Path, path: Any, device: torch.device, params: dict[str, Any], fast: bool) -> torch.nn.Module:
    """A training output folder: the architecture of its card, its weights loaded strictly."""
    from .io.lock import lock_owner
    from .resume import file_sha256

    card = read_card(folder)
    owner = lock_owner(folder)
    busy = f" ({folder} is being written by {owner} right now: wait for it to finish)" if owner else ""
    _check_card(card, folder / CARD_FILE)
    spec, saved = _architecture(card, folder)
    for key, value in params.items():
        if key in saved and saved[key] != value:
            raise InvalidParameterError(f"{folder} was trained with {key}={saved[key]!r}, so {key}={value!r} would not "
                                        "fit its weights; drop that parameter, or train a new network")
    weights = Path(path) if path is not None else folder / str(card.get("weights_file", WEIGHTS_FILE))
    meta = device.type == "meta"
    if not meta and not weights.is_file():
        unfinished = (folder / "checkpoint.pt").is_file()
        raise CheckpointError(f"{folder} holds no weights file {weights.name}" + (
            ": its training has not finished; continue it with the same guidekit train-* command and --resume"
            if unfinished else "; it is not a finished guidekit train-* output folder") + busy)
    digest = None if meta else file_sha256(weights)
    if digest is not None and path is None and isinstance(card.get("sha256"), str) and digest != card["sha256"]:
        raise IdentityError(f"{weights} does not match the sha256 its card records ({card['sha256'][:12]}…, the file "
                            f"has {digest[:12]}…): it was damaged or replaced after training; restore it from a copy "
                            "or train again" + busy)
    if owner and not meta:
        warnings.warn(f"{folder} is being written by {owner}: its weights and card change when that run finishes",
                      stacklevel=3)
    net = load_network(spec, None if meta else weights, device, params={**saved, **params}, fast=fast)
    inner = getattr(net, "card", None)
    net.card = {**(inner if isinstance(inner, Mapping) else {}), **card, "folder": str(folder)}
    net.card.pop("random_weights", None)
    if not meta:
        net.card.update(weights=str(weights), sha256=digest)
    return net


def image_shape(net: Any, *, required: bool = True) -> tuple[int | None, int | None]:
    """(channels, size) of the square images ``net`` makes or reads: its attributes, else its card."""
    card = getattr(net, "card", None) or {}
    size = getattr(net, "image_size", None) or card.get("image_size")
    channels = (getattr(net, "image_channels", None) or getattr(net, "in_channels", None) or card.get("channels")
                or card.get("in_channels"))
    if required and (size is None or channels is None):
        raise InvalidParameterError(f"cannot tell the image size and channels of {type(net).__name__}: its card "
                                    "should say image_size and channels")
    return (None if channels is None else int(channels)), (None if size is None else int(size))


def weights_sha256(net: Any, path: str | os.PathLike[str] | None) -> str | None:
    """What identifies a network's weights: the sha256 of ``path``, else its card's (bundled models, training
    folders), else None (random weights)."""
    from .resume import file_sha256

    if path is not None:
        return file_sha256(path)
    digest = (getattr(net, "card", None) or {}).get("sha256")
    return digest if isinstance(digest, str) else None


def _resolvers() -> list[str]:
    """``"what it resolves (distribution)"`` for every plugin resolver: the first line of its docstring."""
    from .registry import default_registry

    found = []
    for dist, impl in default_registry().manager.implementations(HOOK):
        doc = (inspect.getdoc(impl.function) or "").strip().splitlines()
        found.append(f"{doc[0].rstrip('.') if doc else 'its own specs'} ({dist})")
    return found


def _unknown_message(spec: str) -> str:
    from .registry import available, default_registry, install_hint

    where = Path(spec)
    if where.is_dir() and (where / "checkpoint.pt").is_file():
        from .io.lock import lock_owner

        owner = lock_owner(where)
        return (f"{spec} holds a training checkpoint but no {CARD_FILE}: " + (
            f"it is being trained by {owner} right now; wait for it to finish" if owner else
            "its training has not finished (or was killed, or stopped by a full disk, while writing its results); run "
            "the same guidekit train-* command with --resume to finish it"))
    if where.is_file() and where.name in (CARD_FILE, WEIGHTS_FILE) and (where.parent / CARD_FILE).is_file():
        return f"{spec} is a file of the training folder {where.parent}; name the folder itself: {where.parent}"
    hint = install_hint("network", spec)
    if hint:  # e.g. a diffusers folder while guidekit-diffusers is not installed
        return f"no installed plugin resolves {spec!r}: {hint}"
    if where.is_dir():
        head = f"{spec} is a folder without {CARD_FILE}, so it is no training output folder"
    elif where.is_file():
        head = (f"{spec} is a file; name the network's architecture instead (a name, a flag string or a training "
                "folder) and give the file as its weights (path=, --model-path)")
    else:
        head = f"no network {spec!r}"
    names = available("network")
    close = difflib.get_close_matches(spec, names, n=1)
    kinds = [f"a registered network name (guidekit list network: {', '.join(names) or 'none installed'})",
             f"a training output folder ({CARD_FILE} and {WEIGHTS_FILE}, written by guidekit train-diffusion or "
             "train-classifier)", *_resolvers()]
    message = f"{head}. A network is named by: " + "; ".join(kinds) + "."
    if close:
        message += f" Did you mean {close[0]!r}?"
    failures = default_registry().manager.failures
    if failures:
        message += " Plugins that failed to load: " + "; ".join(f.describe() for f in failures)
    return message
