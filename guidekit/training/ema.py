"""Exponential moving average of the weights, with the usual warm-up."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``shadow ← d·shadow + (1 − d)·θ`` with d = min(decay, (1 + n) / (10 + n)) after n updates.

    Without the warm-up, a 0.9999 average after a CPU run's ~2,000 steps is still mostly the random
    initialisation; with it, the average follows the weights early and slows down later.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def rate(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.rate()
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)
        self.updates += 1

    def state_dict(self) -> dict[str, object]:
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}  # type: ignore[union-attr]
        self.updates = int(state["updates"])  # type: ignore[arg-type]
