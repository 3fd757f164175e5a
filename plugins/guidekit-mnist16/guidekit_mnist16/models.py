"""Loading the bundled weights: the card is read, the sha256 checked, the architecture rebuilt."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from guidekit.errors import CheckpointError, UnknownComponentError

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: the 5,000 mnist16 images as an ADM-layout batch (uint8 NHWC, arr_1 labels): the reference for FD/precision/recall
REFERENCE = WEIGHTS / "mnist16-reference.npz"
NAMES = ("mnist16-unet", "mnist16-unet-cond", "mnist16-classifier-ce", "mnist16-classifier-ect", "mnist16-oracle")
SUMMARIES = {
    "mnist16-unet": "unconditional diffusion model of mnist16 (16x16 digits), ADM UNet, learned sigma",
    "mnist16-unet-cond": "class-conditional diffusion model of mnist16; label 10 is the null label (for CFG)",
    "mnist16-classifier-ce": "noise-aware mnist16 classifier trained with cross-entropy",
    "mnist16-classifier-ect": "noise-aware mnist16 classifier trained with ECT (eta 0.2, paper Eq. 12)",
    "mnist16-oracle": "clean-image mnist16 classifier (other architecture) to judge samples; never guides",
}


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise UnknownComponentError(f"no bundled model {name!r}; bundled: {', '.join(NAMES)}")


def card(name: str) -> dict[str, Any]:
    """The model card of a bundled model (a fresh copy)."""
    _check_name(name)
    path = WEIGHTS / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(
            f"the card of {name} is missing from {WEIGHTS}: this installation of guidekit-mnist16 is incomplete; "
            f"reinstall it, or in a checkout train it with: python scripts/train_mnist16.py {name.removeprefix('mnist16-')}"
        )
    return json.loads(path.read_text())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _build(info: dict[str, Any]) -> nn.Module:
    if "flags" in info:
        import guidekit_adm as adm

        return adm.create_model(info["flags"])
    from guidekit.extractors.small import SmallCNN

    return SmallCNN(**info["arch"])


def load(name: str, path: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu") -> nn.Module:
    """The bundled model ``name`` in eval mode, weights checked against ``card["sha256"]``.

    ``path`` loads other weights of the same architecture (e.g. your own retrained file) instead;
    then the sha256 is not checked and the card records the path.
    """
    from safetensors.torch import load_file

    from guidekit.devices import as_device

    info = card(name)
    device = as_device(device, allow_meta=True)
    file = Path(path) if path is not None else WEIGHTS / f"{name}.safetensors"
    if file.is_dir():
        raise CheckpointError(f"weights path {file} of {name} is a folder; give the .safetensors file inside it")
    if not file.is_file():
        raise CheckpointError(f"weights file {file} of {name} not found")
    if path is None and _sha256(file) != info["sha256"]:
        raise CheckpointError(f"{file} does not match the sha256 in its card: the file is damaged; reinstall guidekit-mnist16")
    model = _build(info)
    try:
        state = load_file(str(file))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for foreign or damaged files
        raise CheckpointError(f"cannot read {file} as .safetensors ({type(exc).__name__}: {exc}); the bundled models "
                              "load safetensors files, e.g. guidekit.training.export_weights(state, 'w.safetensors')") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # torch lists every key: keep the first of each kind, on one line
        detail = "; ".join(line.strip()[:200] + ("…" if len(line.strip()) > 200 else "")
                           for line in str(exc).splitlines()[1:4])
        raise CheckpointError(f"{file} does not fit the {name} architecture ({detail}); give weights saved from "
                              f"a {name} network") from None
    model.card = copy.deepcopy(info) if path is None else {**info, "weights": str(file), "sha256": _sha256(file)}
    model.card["reference_batch"] = str(REFERENCE)
    model.card["role"] = "diffusion" if "unet" in name else "classifier"  # what guidekit sample checks --model against
    return model.to(device).eval()


def cards_table() -> str:
    """The cards of all bundled models as a reStructuredText table (docs/bundled_cards.rst)."""
    rows = [("model", "architecture", "parameters", "training", "held-out accuracy", "trained on, time")]
    for name in NAMES:
        c = card(name)
        metrics = c.get("metrics", {})
        if "heldout_accuracy_by_t" in metrics:
            acc = ", ".join(f"t={t}: {a:.3f}" for t, a in metrics["heldout_accuracy_by_t"].items())
        elif "heldout_accuracy" in metrics:
            acc = f"clean: {metrics['heldout_accuracy']:.3f}"
        else:
            acc = "-"
        tr = c.get("training", {})
        what = (f"{tr.get('loss', 'hybrid')} {tr.get('loss_params') or ''}".strip() if "classifier" in name else
                "hybrid loss" + (f", label dropout {tr['class_dropout']}" if tr.get("class_dropout") else "")) \
            if "flags" in c else f"CE, {tr.get('epochs')} epochs, ±1 px shifts"
        steps = f"{c['steps']} steps × {tr['batch_size']}, lr {tr['lr']}, seed {c['seed']}" if "steps" in c else f"seed {c['seed']}"
        rows.append((f"``{name}``", c["architecture"], f"{c['parameters']:,}", f"{what}; {steps}", acc,
                     f"{c['trained_on']}, {c['train_seconds']:.0f} s"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = " ".join("=" * w for w in widths)
    fmt = lambda r: " ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line, fmt(rows[0]), line, *map(fmt, rows[1:]), line]) + "\n"
