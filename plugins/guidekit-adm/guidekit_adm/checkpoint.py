"""Load released (or own) ADM checkpoints strictly, with diagnostics that name the right config."""

from __future__ import annotations

import functools
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointDtypeWarning, CheckpointMismatchError, ConfigError
from .factory import as_device, build, model_card, resolve_config
from .flags import ModelConfig
from .fp16 import convert_to_fp16
from .matching import describe_matches, state_shapes
from .nn import set_silu
from .releases import Release

#: how many keys of each kind an error message lists before "... and N more"
MAX_LISTED = 3


def _listing(title: str, items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = f"\n    ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return f"  {title} ({len(items)}):\n" + "\n".join(f"    {item}" for item in shown) + more


#: the key prefix ``torch.nn.parallel.DistributedDataParallel`` (and ``DataParallel``) adds when saved whole
DDP_PREFIX = "module."


def read_state_dict(path: str | Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Read a ``.pt``/``.pth`` (``torch.load``, ``weights_only=True``) or ``.safetensors`` file.

    A ``{"state_dict": ...}`` wrapper is unwrapped, and a ``module.`` prefix on every key (a
    DistributedDataParallel model saved whole) is removed.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(
                f"reading {path.name} needs the safetensors package: pip install safetensors"
            ) from None
        reader = functools.partial(load_file, str(path), device=str(device))
    else:
        reader = functools.partial(torch.load, path, map_location=device, weights_only=True)
    try:
        state = reader()
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file, whatever the reader raises
        if isinstance(exc, pickle.UnpicklingError):  # torch's text suggests weights_only=False: not offered here
            why = "torch.load(weights_only=True) refused it: the file is corrupt or pickles objects besides tensors"
        else:
            why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
        raise CheckpointMismatchError(
            f"cannot read {path} ({why}); expected a state dict saved with "
            "torch.save(model.state_dict(), path), or a .safetensors file"
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(f"{path} does not hold a flat state dict of tensors")
    if state and all(isinstance(k, str) and k.startswith(DDP_PREFIX) for k in state):
        state = {k[len(DDP_PREFIX):]: v for k, v in state.items()}
    return dict(state)


def ensure_float32(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Warn about floating tensors that are not float32 and cast them to float32."""
    odd = sorted({str(v.dtype) for v in state.values() if v.is_floating_point() and v.dtype != torch.float32})
    if not odd:
        return state
    warnings.warn(
        f"{source} holds {', '.join(odd)} tensors; the released checkpoints are float32. "
        "Casting to float32 (use use_fp16=True for the reference mixed precision).",
        CheckpointDtypeWarning,
        stacklevel=3,
    )
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def check_compatible(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointMismatchError` naming missing/unexpected/mis-shaped keys."""
    expected, found = state_shapes(model.state_dict()), state_shapes(state)
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k}: file {list(found[k])} vs model {list(expected[k])}"
        for k in expected
        if k in found and found[k] != expected[k]
    ]
    ours = model.state_dict()
    wrong_kind = [
        f"{k}: file {state[k].dtype} vs model {ours[k].dtype}"
        for k in expected
        if k in found and state[k].is_floating_point() != ours[k].is_floating_point()
    ]
    if not (missing or unexpected or mismatched or wrong_kind):
        return
    parts = [f"{source} does not fit {type(model).__name__}:"]
    listings = [_listing(title, items) for title, items in (
        ("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched),
        ("integer tensors where the model has floating-point ones (or the reverse)", wrong_kind)) if items]
    label_only = {*missing, *unexpected} == {"label_emb.weight"} and not mismatched  # only the class embedding differs
    kinds = {"a diffusion UNet": "output_blocks.", "a classifier (encoder)": "out.2.c_proj."}
    ours_kind = next((k for k, key in kinds.items() if any(n.startswith(key) for n in expected)), None)
    file_kind = next((k for k, key in kinds.items() if any(n.startswith(key) for n in found)), None)
    if file_kind and ours_kind and file_kind != ours_kind:  # e.g. a UNet's weights given for the classifier
        parts.append(f"  hint: the file holds {file_kind}, but {type(model).__name__} is {ours_kind}: give it where "
                     f"{file_kind.split(' (')[0].removeprefix('a ')} weights belong (guidekit sample: "
                     f"{'--model-path' if 'UNet' in file_kind else '--classifier-path'})")
    elif missing or unexpected or mismatched:
        matches = describe_matches(found)
        if not (label_only and matches.startswith("no release config")):  # "closest: ..." would mislead then
            parts.append(f"  hint: {matches}.")
    if label_only:
        cond = "label_emb.weight" in found
        parts.append(f"  hint: the file holds a{' class-conditional' if cond else 'n unconditional'} model: use the "
                     f"flag --class_cond {cond} (guidekit sample: --{'' if cond else 'no-'}class-cond)")
    if not (missing or unexpected or mismatched):
        parts.append("  hint: the keys and shapes fit; the file stores these tensors with an integer dtype, so it "
                     "was not saved from the trained network: save model.state_dict() of the float model")
    raise CheckpointMismatchError("\n".join(parts + listings))  # what to do first, then the evidence


def load_checkpoint(
    name_or_config_or_model: str | ModelConfig | nn.Module,
    path: str | Path,
    *,
    device: torch.device | str = "cpu",
    use_fp16: bool | None = None,
    silu: str | None = None,
) -> nn.Module:
    """Build the network and load ``path`` into it with ``strict=True``; return it in eval mode.

    The first argument is a release name, a reference flag string, a :class:`ModelConfig` or an
    already built module. ``use_fp16=None`` follows the release's README setting on CUDA and
    stays float32 elsewhere. The built module gets an ``adm_config`` attribute. ``silu``
    (``"guided-diffusion"`` or ``"ed-dpm"``, see :func:`set_silu`) defaults to the config's flavour
    and leaves a given module as it is.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path must be the checkpoint file (a str or Path), got {path!r}")
    path = Path(path)
    device = as_device(device)
    config = None if isinstance(name_or_config_or_model, nn.Module) else resolve_config(name_or_config_or_model)
    if path.is_dir():
        inside = f" (such as {path / config.checkpoint})" if isinstance(config, Release) else ""
        raise FileNotFoundError(f"checkpoint path {path} is a folder; give the weights file inside it{inside}")
    if not path.is_file():
        hint = f"download it from {config.url}" if isinstance(config, Release) else "check the path"
        raise FileNotFoundError(f"checkpoint file not found: {path} ({hint})")

    state = ensure_float32(read_state_dict(path, device), str(path))
    if config is None:
        model = name_or_config_or_model
        check_compatible(model, state, str(path))
        model.load_state_dict(state, strict=True)
        model.to(device)
    else:
        model = build(config.kind, {**config.kwargs, "use_fp16": False}, device="meta")
        check_compatible(model, state, str(path))
        model.load_state_dict(state, strict=True, assign=True)
        model.to(device)
        model.adm_config = config
        model.card = model_card(config)
    if silu is not None or config is not None:
        set_silu(model, silu if silu is not None else config.flavor)
    if use_fp16 is None:
        use_fp16 = config is not None and config.fp16 and device.type == "cuda"
    if use_fp16:
        convert_to_fp16(model)
    return model.eval()

