"""Training settings shared by classifier (paper Algorithm 2) and diffusion training."""

from __future__ import annotations

from typing import Any

import attrs

#: fields that do not change the result of the steps already taken: a resume may change them
RESUMABLE_FIELDS = ("steps", "log_every", "save_every")


@attrs.frozen
class TrainConfig:
    """AdamW, an EMA of the weights with warm-up, checkpoints every ``save_every`` steps.

    ``loss`` / ``loss_params`` name a registered classifier loss (``"ce"``, ``"ect"`` with η);
    diffusion training uses the process's own loss (hybrid with learned sigma, else eps MSE) and
    ignores them. ``class_dropout`` is the probability that a class-conditional diffusion model
    sees ``null_label`` (default: its last class) instead of y, for classifier-free guidance.
    The EMA decay is min(ema_decay, (1 + n) / (10 + n)) after n updates when ``ema_warmup``.
    """

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
    ema_decay: float = attrs.field(default=0.9999, converter=float,
                                   validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])
    ema_warmup: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    save_every: int = attrs.field(default=500, validator=attrs.validators.ge(1))
    class_dropout: float = attrs.field(default=0.0, converter=float,
                                       validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
    null_label: int | None = None
    grad_clip: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0.0)))
