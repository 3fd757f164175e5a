"""Training settings shared by classifier (paper Algorithm 2) and diffusion training."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..errors import InvalidParameterError

#: fields that do not change the result of the steps already taken: a resume may change them
RESUMABLE_FIELDS = ("steps", "log_every", "save_every")
#: fields that only one kind of training reads (left out of the other kind's card)
KIND_FIELDS = {"classifier": ("loss", "loss_params", "noised"), "diffusion": ("class_dropout", "null_label")}


def _rule(test: Callable[[Any], bool], want: str, optional: bool = False) -> Callable[[Any, attrs.Attribute, Any], None]:
    """An attrs validator raising :class:`InvalidParameterError` "TrainConfig NAME must be WANT" unless ``test(value)``."""
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not (optional and value is None) and not test(value):
            raise InvalidParameterError(f"TrainConfig {attribute.name} must be {want}, got {value!r}")
    return check


def _integer(minimum: int, optional: bool = False) -> Callable[[Any, attrs.Attribute, Any], None]:
    return _rule(lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum,
                 f"an integer >= {minimum}" + (" or None" if optional else ""), optional)


def _real(value: Any, field: attrs.Attribute) -> float:
    """float(value), or an error naming the field (a converter that knows its field)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"TrainConfig {field.name} must be a number, got {value!r}") from None


def _params(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidParameterError(f"TrainConfig loss_params must be a dict such as {{'eta': 0.2}}, got {value!r}")
    return dict(value)


_number = attrs.Converter(_real, takes_field=True)


@attrs.frozen
class TrainConfig:
    """AdamW, an EMA of the weights with warm-up, checkpoints every ``save_every`` steps.

    ``loss`` / ``loss_params`` name a registered classifier loss (``"ce"``, ``"ect"`` with η);
    diffusion training uses the process's own loss (hybrid with learned sigma, else eps MSE) and
    ignores them. ``class_dropout`` is the probability that a class-conditional diffusion model
    sees ``null_label`` (default: its last class) instead of y, for classifier-free guidance.
    The EMA decay is min(ema_decay, (1 + n) / (10 + n)) after n updates when ``ema_warmup``.
    """

    steps: int = attrs.field(default=1000, validator=_integer(1))
    batch_size: int = attrs.field(default=64, validator=_integer(1))
    lr: float = attrs.field(default=3e-4, converter=_number, validator=_rule(lambda v: 0 < v < math.inf, "a finite number > 0"))
    weight_decay: float = attrs.field(default=0.0, converter=_number,
                                      validator=_rule(lambda v: 0 <= v < math.inf, "a finite number >= 0"))
    loss: str = attrs.field(default="ce", validator=_rule(lambda v: isinstance(v, str), "a loss name such as 'ce' or 'ect'"))
    loss_params: dict[str, Any] = attrs.field(factory=dict, converter=_params)
    noised: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    anneal_lr: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    seed: int = attrs.field(default=0, validator=_integer(0))
    log_every: int = attrs.field(default=50, validator=_integer(1))
    ema_decay: float = attrs.field(default=0.9999, converter=_number, validator=_rule(lambda v: 0 <= v < 1, "in [0, 1)"))
    ema_warmup: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    save_every: int = attrs.field(default=500, validator=_integer(1))
    class_dropout: float = attrs.field(default=0.0, converter=_number, validator=_rule(lambda v: 0 <= v <= 1, "in [0, 1]"))
    null_label: int | None = attrs.field(default=None, validator=_integer(0, optional=True))
    grad_clip: float | None = attrs.field(default=None, validator=_rule(
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf,
        "a finite number > 0 or None", optional=True))


def card_record(config: TrainConfig, kind: str) -> dict[str, Any]:
    """The settings of a ``kind`` (``"classifier"`` or ``"diffusion"``) run for its card: the other kind's fields
    (a diffusion model's loss name, a classifier's label dropout) are left out, since that training never read them."""
    other = [f for k, fields in KIND_FIELDS.items() if k != kind for f in fields]
    return {k: v for k, v in attrs.asdict(config).items() if k not in other}
