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


class GuidanceContract:
    """Every guidance makes one step on a small class-conditional model and samples reproducibly.

    ``make_guidance`` returns the guidance under test; ``make_model`` defaults to the exact toy
    (:meth:`guidekit.toy.GaussianMixtureToy.conditional_denoiser`, 5 classes, null label 5, images
    1×4×4), and :attr:`toy` gives its classifier for guidances that need one.
    """

    num_classes = 5
    shape = (3, 1, 4, 4)

    @property
    def toy(self) -> Any:
        from ..toy import GaussianMixtureToy

        return GaussianMixtureToy(num_classes=self.num_classes, shape=self.shape[1:], std=0.5, separation=0.3)

    def make_guidance(self) -> Any:
        raise NotImplementedError

    def make_model(self) -> Any:
        return self.toy.conditional_denoiser()

    def test_guidance_step_contract(self) -> None:
        from .. import GaussianDiffusion
        from ..guidance import GuidedOutput, StepContext

        guidance, model = self.make_guidance(), self.make_model()
        diffusion = GaussianDiffusion.create(steps=1000, learn_sigma=False, respacing="ddim10")
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(self.shape, generator=gen)
        y = torch.arange(self.shape[0]) % self.num_classes
        before = x.clone()
        for i in (9, 5, 0):
            t = diffusion.original_timestep(torch.full((self.shape[0],), i))
            out = guidance.guide(model, x, t, y, StepContext(diffusion, 9 - i, i, diffusion.num_steps, 1000, True))
            assert isinstance(out, GuidedOutput), f"{guidance!r}.guide returned {type(out).__name__}, expected GuidedOutput"
            assert out.model_output.shape == x.shape and torch.isfinite(out.model_output).all()
            assert not out.model_output.requires_grad, "model_output must not carry an autograd graph"
            if out.grad is not None:
                assert out.grad.shape == x.shape and torch.isfinite(out.grad).all() and not out.grad.requires_grad
            if out.result is not None:
                assert out.result.scale.shape == (self.shape[0],) and torch.isfinite(out.result.scale).all()
        assert torch.equal(x, before), "guide must not modify x_t in place"
        assert all(p.grad is None for p in getattr(model, "parameters", lambda: [])())

    def test_guidance_samples_reproducibly(self) -> None:
        from .. import GaussianDiffusion, sample

        diffusion = GaussianDiffusion.create(steps=1000, learn_sigma=False, respacing="ddim5")
        y = torch.arange(self.shape[0]) % self.num_classes
        runs = [sample(self.make_model(), diffusion, self.shape, guidance=self.make_guidance(), y=y, seed=3,
                       progress=False) for _ in range(2)]
        assert torch.isfinite(runs[0]).all() and torch.equal(runs[0], runs[1])
