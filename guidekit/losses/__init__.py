"""Built-in classifier losses."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..registry import Component
from .ce import CrossEntropyLoss, check_logits, reduce

__all__ = ["CrossEntropyLoss", "check_logits", "reduce"]


@hookimpl
def guidekit_losses() -> list[Component]:
    return [Component("ce", CrossEntropyLoss, "cross-entropy on noised x_t")]
