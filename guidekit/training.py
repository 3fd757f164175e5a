"""Noise-aware classifier training (paper Algorithm 2): CE, or CE + η·KL(p‖U) with the ``ect`` loss.

Each step draws a batch (x0, y), t ~ U{0..T'-1} over the given process, x_t = q_sample(x0, t, ε)
(paper Eq. 2) and minimises the chosen loss on ``classifier(x_t, t_orig)`` with AdamW, as ADM's
``classifier_train.py`` does, on the full (B, K) logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch

from .diffusion import GaussianDiffusion
from .errors import InvalidParameterError
from .guidance import check_labels, entropy_from_log_probs
from .progress import progress as progress_bar
from .registry import create


@attrs.frozen
class TrainConfig:
    """Training settings; ``loss`` is a registered loss name (``"ce"``, ``"ect"``) with ``loss_params``."""

    steps: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    batch_size: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    lr: float = attrs.field(default=3e-4, converter=float, validator=attrs.validators.gt(0.0))
    weight_decay: float = attrs.field(default=0.0, converter=float, validator=attrs.validators.ge(0.0))
    loss: str = "ce"
    loss_params: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    noised: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    anneal_lr: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    seed: int = 0
    log_every: int = attrs.field(default=50, validator=attrs.validators.ge(1))


def train_classifier(
    classifier: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    diffusion: GaussianDiffusion,
    config: TrainConfig = TrainConfig(),
    *,
    callback: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``classifier(x_t, t) -> logits`` in place on (images, labels); returns the logged records.

    Each record holds ``step``, ``loss``, ``accuracy`` and mean ``entropy`` of p(ỹ|x_t) over the
    steps since the previous record. Results are reproducible from ``config.seed``.
    """
    if len(images) != len(labels):
        raise InvalidParameterError(f"{len(images)} images but {len(labels)} labels: give one label per image")
    if len(images) == 0:
        raise InvalidParameterError("no training images given")
    if not isinstance(config, TrainConfig):
        raise InvalidParameterError(f"config must be a guidekit.TrainConfig, got {type(config).__name__}")
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise InvalidParameterError("images must be a floating-point torch tensor (B, C, H, W) in [-1, 1]; "
                                    "convert with torch.as_tensor(...).float()")
    loss_fn = create("loss", config.loss, **config.loss_params)
    first = next(iter(classifier.parameters()), None) if isinstance(classifier, torch.nn.Module) else None
    if first is None:
        raise InvalidParameterError("the classifier must be a torch.nn.Module with trainable parameters")
    device = first.device
    labels = check_labels(labels, len(labels), None, "training data")
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(classifier.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    classifier.train()
    records: list[dict[str, float]] = []
    sums = {"loss": 0.0, "accuracy": 0.0, "entropy": 0.0}
    count = 0
    for step in progress_bar(range(config.steps), desc=f"training ({config.loss})", disable=not progress):
        if config.anneal_lr:
            for group in opt.param_groups:
                group["lr"] = config.lr * (1 - step / config.steps)
        idx = torch.randint(0, len(images), (config.batch_size,), generator=gen)
        x0, y = images[idx].to(device), labels[idx].to(device)
        if config.noised:
            t_idx = torch.randint(0, diffusion.num_steps, (config.batch_size,), generator=gen).to(device)
            x_t = diffusion.q_sample(x0, t_idx, torch.randn(x0.shape, generator=gen).to(device))
        else:
            t_idx, x_t = torch.zeros(config.batch_size, dtype=torch.long, device=device), x0
        logits = classifier(x_t, diffusion.original_timestep(t_idx))
        loss = loss_fn(logits, y)
        if not torch.isfinite(loss):
            raise InvalidParameterError(f"the {config.loss} loss became {loss.item()} at step {step}: lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            lp = torch.log_softmax(logits.detach().double(), -1)
            sums["loss"] += loss.item()
            sums["accuracy"] += (logits.argmax(-1) == y).float().mean().item()
            sums["entropy"] += entropy_from_log_probs(lp).mean().item()
        count += 1
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            record = {"step": step + 1, **{k: v / count for k, v in sums.items()}}
            records.append(record)
            if callback is not None:
                callback(record)
            sums, count = dict.fromkeys(sums, 0.0), 0
    classifier.eval()
    return records
