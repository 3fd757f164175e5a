"""Local diffusers model folders (``save_pretrained`` layout) as guidekit networks: the resolver seam.

Two layouts are recognised: a pipeline folder (``model_index.json``, ``unet/``, ``scheduler/``) and a
model folder (``config.json`` of a ``UNet2DModel`` with ``scheduler_config.json`` beside it, as
``unet.save_pretrained(d); scheduler.save_pretrained(d)`` leave it). Nothing is fetched from a hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from guidekit.errors import CheckpointError, InvalidParameterError

from .network import DiffusersNetwork

SUPPORTED = ("UNet2DModel",)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path} ({exc}); is the diffusers folder complete?") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds no JSON object; is it a diffusers config?")
    return data


def layout(folder: str | Path) -> str | None:
    """``"pipeline"``, ``"model"`` or ``None`` (not a diffusers folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if (folder / "model_index.json").is_file():
        return "pipeline"
    config = folder / "config.json"
    if config.is_file():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and "_diffusers_version" in data:
            return "model"
    return None


def _parts(folder: Path, kind: str) -> tuple[Path, Path, str]:
    """(UNet folder, scheduler config file, UNet class name)."""
    if kind == "pipeline":
        index = _json(folder / "model_index.json")
        unet_entry = index.get("unet")
        if not unet_entry:
            raise InvalidParameterError(f"{folder} is a diffusers pipeline without a unet (model_index.json lists "
                                        f"{sorted(k for k in index if not k.startswith('_'))}); guidekit drives UNet2DModel")
        return folder / "unet", folder / "scheduler" / "scheduler_config.json", str(unet_entry[-1])
    unet_class = str(_json(folder / "config.json").get("_class_name"))
    return folder, folder / "scheduler_config.json", unet_class


def load_folder(folder: str | Path, device: str = "cpu", *, null_label: int | None = None) -> DiffusersNetwork:
    """The diffusers model saved in ``folder``, wrapped as a guidekit network (its ``card`` names the folder)."""
    import diffusers

    folder = Path(folder)
    kind = layout(folder)
    if kind is None:
        raise InvalidParameterError(f"{folder} is not a diffusers model folder (no model_index.json, no config.json "
                                    "with _diffusers_version)")
    unet_dir, scheduler_file, unet_class = _parts(folder, kind)
    if unet_class not in SUPPORTED:
        raise InvalidParameterError(f"{folder} holds a {unet_class}; guidekit drives {', '.join(SUPPORTED)} "
                                    "(class-conditional through num_class_embeds)")
    if not scheduler_file.is_file():
        raise InvalidParameterError(
            f"{folder} has no scheduler config ({scheduler_file.name}), so its diffusion process is unknown: save the "
            "scheduler it was trained with beside the model (scheduler.save_pretrained(folder)), or use the pipeline folder")
    scheduler_config = _json(scheduler_file)
    scheduler_class = getattr(diffusers, str(scheduler_config.get("_class_name")), None)
    if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
        raise InvalidParameterError(f"{scheduler_file} names scheduler {scheduler_config.get('_class_name')!r}, which "
                                    f"diffusers {diffusers.__version__} does not have")
    scheduler = scheduler_class.from_config(scheduler_config)
    try:
        unet = getattr(diffusers, unet_class).from_pretrained(str(unet_dir), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot load the {unet_class} in {unet_dir}: {exc}") from None
    model = DiffusersNetwork(unet, scheduler, null_label=null_label).to(device).eval()
    model.card.update(name=folder.name, weights=str(unet_dir.resolve()), layout=kind)
    return model


def resolve(spec: str, path: str | None, device: str) -> DiffusersNetwork | None:
    """The hook's work: a diffusers folder becomes a network; anything else is left to other resolvers (None)."""
    if not isinstance(spec, str) or layout(spec) is None:
        return None
    if path is not None:
        raise InvalidParameterError(f"{spec} is a diffusers folder, which carries its own weights; drop the weights "
                                    f"path {path!r} (--model-path)")
    return load_folder(spec, device)
