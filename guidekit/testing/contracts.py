"""Contract test bases for plugin authors (subclass in your tests, like diffusers' scheduler tests).

    from guidekit.testing.contracts import ScalerContract

    class TestMyScaler(ScalerContract):
        def make_scaler(self):
            return MyScaler(gamma=2.0)
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import HealthCheck, given, settings

from .strategies import guidance_states


class ScalerContract:
    """Every scaler returns a finite, non-negative (B,) tensor for any valid state."""

    def make_scaler(self) -> Any:
        raise NotImplementedError

    # one contract method runs for many subclasses: that is intended
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(state=guidance_states())
    def test_scaler_contract(self, state) -> None:
        scaler = self.make_scaler()
        s = torch.as_tensor(scaler(state))
        assert s.shape == (state.batch_size,), f"{scaler!r} returned shape {tuple(s.shape)}"
        assert torch.isfinite(s).all(), f"{scaler!r} returned non-finite {s}"
        assert (s >= 0).all(), f"{scaler!r} returned negative {s}"


class LossContract:
    """Every loss returns a finite scalar with a finite gradient for (B, K) logits and valid labels."""

    def make_loss(self) -> Any:
        raise NotImplementedError

    def test_loss_contract(self) -> None:
        gen = torch.Generator().manual_seed(0)
        logits = (torch.randn(5, 7, generator=gen) * 10).requires_grad_(True)
        y = torch.randint(0, 7, (5,), generator=gen)
        loss = self.make_loss()(logits, y)
        assert loss.ndim == 0 and torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()
