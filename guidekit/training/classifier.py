"""Noise-aware classifier training (paper Algorithm 2): CE, or CE + η·KL(p‖U) with the ``ect`` loss.

Each step draws a batch (x0, y), t ~ U{0..T'-1} over the given process, x_t = q_sample(x0, t, ε)
(paper Eq. 2) and minimises the chosen loss on ``classifier(x_t, t_orig)`` with AdamW, as ADM's
``classifier_train.py`` does, on the full (B, K) logits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..diffusion import GaussianDiffusion, check_diffusion
from ..errors import InvalidParameterError
from ..guidance import check_labels, entropy_from_log_probs
from ..identity import components_identity
from ..registry import create
from .config import TrainConfig
from .data import check_data, check_setup, draw_batch, fingerprint
from .loop import Batch, TrainResult, fit


def train_classifier(
    classifier: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    diffusion: GaussianDiffusion,
    config: TrainConfig = TrainConfig(),
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    settings: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``classifier(x_t, t) -> logits`` in place on (images, labels).

    Records (every ``config.log_every`` steps) hold ``step``, ``loss``, ``accuracy`` and the mean
    ``entropy`` of p(ỹ|x_t). The classifier keeps the trained weights; ``result.ema`` holds their
    EMA. Reproducible from ``config.seed``; see :func:`guidekit.training.loop.fit` for checkpoints.
    ``settings`` (e.g. ``{"architecture": ...}``) are stored with the checkpoint beside the data's
    fingerprint and the process, and a resume with other values is refused.
    """
    check_setup(classifier, config, "classifier")
    check_diffusion(diffusion)
    if labels is None:
        raise InvalidParameterError("a classifier is trained on labels: pass one label per image")
    check_data(images, labels, classifier)
    if config.loss_params.get("reduction") == "none":
        raise InvalidParameterError(f"loss_params={config.loss_params} makes the loss return one value per image; "
                                    "training needs one number per step: drop 'reduction' (the default is the mean)")
    loss_fn = create("loss", config.loss, **config.loss_params)
    labels = check_labels(labels, len(labels), None, "training data")

    def draw(gen: torch.Generator) -> Batch:
        batch = draw_batch(gen, images, labels, config.batch_size)
        if config.noised:
            batch["t"] = torch.randint(0, diffusion.num_steps, (config.batch_size,), generator=gen)
            batch["noise"] = torch.randn(batch["x0"].shape, generator=gen)
        return batch

    def step_loss(model: nn.Module, b: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if config.noised:
            x_t, t = diffusion.q_sample(b["x0"], b["t"], b["noise"]), diffusion.original_timestep(b["t"])
        else:
            x_t, t = b["x0"], torch.zeros(len(b["x0"]), dtype=torch.long, device=b["x0"].device)
        logits = model(x_t, t)
        loss = loss_fn(logits, b["y"])
        with torch.no_grad():
            lp = torch.log_softmax(logits.detach().double(), -1)
            metrics = {"accuracy": (logits.argmax(-1) == b["y"]).double().mean().item(),
                       "entropy": entropy_from_log_probs(lp).mean().item()}
        return loss, metrics

    return fit(classifier, config, draw, step_loss, kind="classifier", checkpoint=checkpoint, resume=resume,
               overwrite=overwrite, callback=callback, progress=progress, stop_after=stop_after,
               settings={**(settings or {}), "data": fingerprint(images, labels),
                         **({"diffusion": diffusion.config.settings()} if config.noised else {}),
                         "code": components_identity([("loss", config.loss)], {"network": classifier})})
