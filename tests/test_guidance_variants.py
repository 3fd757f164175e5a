"""CFG-Zero*, cfg-rescale's two spaces, APG's momentum with guidance off, explicit respacing, sampler.start."""

from __future__ import annotations

import math

import pytest
import torch

import guidekit as gk
from guidekit.guidance import StepContext
from guidekit.guidance.cfg_zero_star import optimised_scale, zero_velocity_eps
from guidekit.testing.contracts import GuidanceContract
from guidekit.toy import GaussianMixtureToy

TOY = GaussianMixtureToy(num_classes=4, shape=(1, 4, 4), std=0.5, separation=0.3)
NULL = 4
DIFF = gk.GaussianDiffusion.create(steps=1000, learn_sigma=False, respacing="ddim5")


class Counting(torch.nn.Module):
    """The toy's conditional ε-model, recording the labels of every forward call."""

    num_classes = NULL + 1

    def __init__(self) -> None:
        super().__init__()
        self.model = TOY.conditional_denoiser()
        self.card = {"null_label": NULL}
        self.calls: list[list[int]] = []

    def forward(self, x, t, y):
        self.calls.append(y.tolist())
        return self.model(x, t, y)


def context(step: int, diffusion: gk.GaussianDiffusion = DIFF) -> StepContext:
    i = diffusion.num_steps - 1 - step
    return StepContext(diffusion, step, i, diffusion.num_steps, 1000, True)


def step_inputs(step: int, batch: int = 2):
    x = torch.randn(batch, 1, 4, 4, generator=torch.Generator().manual_seed(step))
    t = DIFF.original_timestep(torch.full((batch,), DIFF.num_steps - 1 - step))
    return x, t, torch.arange(batch) % NULL


# -- CFG-Zero* -------------------------------------------------------------------------------------
def test_cfg_zero_star_combines_as_computed_by_hand():
    cond = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    uncond = torch.tensor([[1.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
    w = torch.tensor([[3.0], [2.0]], dtype=torch.float64)
    # sample 0: s* = 1/1 = 1, s*u = (1, 0), (1, 0) + 3·((1, 2) − (1, 0)) = (1, 6)
    # sample 1: s* = (6 + 8)/8 = 1.75, s*u = (3.5, 3.5), (3.5, 3.5) + 2·((3, 4) − (3.5, 3.5)) = (2.5, 4.5)
    guided = gk.create("guidance", "cfg-zero-star").combine(cond, uncond, w, None, None)
    torch.testing.assert_close(guided, torch.tensor([[1.0, 6.0], [2.5, 4.5]], dtype=torch.float64), rtol=0, atol=1e-7)
    torch.testing.assert_close(optimised_scale(cond, uncond).flatten(), torch.tensor([1.0, 1.75], dtype=torch.float64))


def test_cfg_zero_star_zero_init_is_a_zero_velocity_without_network_calls():
    model, guidance = Counting(), gk.create("guidance", "cfg-zero-star", gamma=3.0, zero_init_steps=2)
    for step in range(3):
        x, t, y = step_inputs(step)
        out = guidance.guide(model, x, t, y, context(step))
        if step < 2:
            ab = DIFF.alphas_cumprod[DIFF.num_steps - 1 - step].item()
            torch.testing.assert_close(out.model_output, x / (math.sqrt(ab) + math.sqrt(1 - ab)))
            # ε̂ = x̂0: the flow-matching velocity ε − x0 is zero
            x0 = DIFF.predict_xstart_from_eps(x, context(step).index_tensor(x), out.model_output)
            torch.testing.assert_close(x0, out.model_output, rtol=1e-5, atol=1e-5)
            assert model.calls == []
    assert model.calls == [[0, 1, NULL, NULL]]  # the third step: one batched forward of cond and null labels


def test_cfg_zero_star_keeps_the_variance_channels_of_a_learned_sigma_model():
    learned = gk.GaussianDiffusion.create(steps=1000, learn_sigma=True, respacing="ddim5")
    class WithVariance(Counting):
        def forward(self, x, t, y):
            return torch.cat([super().forward(x, t, y), torch.full_like(x, 0.25)], dim=1)

    model = WithVariance()
    x, t, y = step_inputs(0)
    out = gk.create("guidance", "cfg-zero-star").guide(model, x, t, y, context(0, learned))
    assert model.calls == [[0, 1]] and torch.equal(out.model_output[:, 1:], torch.full_like(x, 0.25))
    torch.testing.assert_close(out.model_output[:, :1], zero_velocity_eps(learned, x, context(0).index_tensor(x)))


def test_cfg_zero_star_at_w_1_is_conditional_sampling():
    conditional = gk.sample(Counting(), DIFF, (3, 1, 4, 4), y=torch.tensor([0, 1, 2]), seed=2, progress=False)
    zero_star = gk.sample(Counting(), DIFF, (3, 1, 4, 4), y=torch.tensor([0, 1, 2]), seed=2, progress=False,
                          guidance=gk.create("guidance", "cfg-zero-star", gamma=1.0, zero_init_steps=0))
    torch.testing.assert_close(zero_star, conditional, rtol=0, atol=1e-6)


class TestCFGZeroStarContract(GuidanceContract):
    def make_guidance(self):
        return gk.create("guidance", "cfg-zero-star", gamma=3.0)


def test_available_guidances():
    assert {"classifier", "classifier-free", "cfg-rescale", "apg", "x0-classifier", "cfg-zero-star"} <= set(
        gk.available("guidance"))


# -- cfg-rescale -------------------------------------------------------------------------------------
def _rescaled(cfg, cond, phi):
    ratio = cond.flatten(1).std(1) / cfg.flatten(1).std(1)
    return cfg * (phi * ratio + 1 - phi).view(-1, 1, 1, 1)


@pytest.mark.parametrize("space", ["x0", "output"])
def test_cfg_rescale_in_both_spaces(space):
    gen = torch.Generator().manual_seed(0)
    x, cond, uncond = (torch.randn(2, 1, 4, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    w = torch.tensor([3.0, 5.0], dtype=torch.float64).view(-1, 1, 1, 1)
    ctx = context(2)
    t = ctx.index_tensor(x)
    out = gk.create("guidance", "cfg-rescale", phi=0.7, space=space).combine(cond, uncond, w, x, ctx)
    if space == "output":
        expected = _rescaled(uncond + w * (cond - uncond), cond, 0.7)
    else:
        x0_c, x0_u = (DIFF.predict_xstart_from_eps(x, t, e) for e in (cond, uncond))
        expected = DIFF.predict_eps_from_xstart(x, t, _rescaled(x0_u + w * (x0_c - x0_u), x0_c, 0.7))
    torch.testing.assert_close(out, expected)
    other = gk.create("guidance", "cfg-rescale", phi=0.7, space="x0" if space == "output" else "output")
    assert not torch.allclose(other.combine(cond, uncond, w, x, ctx), out)


# -- APG: momentum and forwards where guidance is off -----------------------------------------------------
def _off_at(steps_off: set[int]):
    """A scaler giving w = 3, and w = 1 (CFG's "off") at the respaced indices of ``steps_off``."""
    def scaler(state):
        off = (DIFF.num_steps - 1 - state.t_index) in steps_off
        return torch.full((state.batch_size,), 1.0 if off else 3.0)

    return scaler


def test_apg_momentum_waits_and_no_unconditional_forward_while_guidance_is_off():
    model = Counting()
    guidance = gk.create("guidance", "apg", scaler=_off_at({0, 2}), momentum=-0.5)
    runnings = []
    for step in range(4):
        x, t, y = step_inputs(step)
        before = len(model.calls)
        guidance.guide(model, x, t, y, context(step))
        calls = model.calls[before:]
        if step in (0, 2):
            assert calls == [[0, 1]]  # the conditional forward alone
        else:
            assert calls == [[0, 1, NULL, NULL]]
        runnings.append(None if guidance._running is None else guidance._running.clone())
    assert runnings[0] is None  # off at the first step: nothing to remember yet
    assert torch.equal(runnings[2], runnings[1])  # off at step 2: the momentum did not advance
    assert not torch.equal(runnings[3], runnings[2])


def test_apg_momentum_is_per_sample_and_restarts_with_each_run():
    model = Counting()

    def half_off(state):  # sample 0 guided, sample 1 off
        return torch.tensor([3.0, 1.0])

    guidance = gk.create("guidance", "apg", scaler=half_off, momentum=-0.5)
    for step in range(2):
        x, t, y = step_inputs(step)
        guidance.guide(model, x, t, y, context(step))
        assert not guidance._running[1].any() and guidance._running[0].any()
    x, t, y = step_inputs(0)
    guidance.guide(model, x, t, y, context(0))  # a new run: the momentum of the last one is gone
    first = guidance._running.clone()
    fresh = gk.create("guidance", "apg", scaler=half_off, momentum=-0.5)
    fresh.guide(model, x, t, y, context(0))
    assert torch.equal(first, fresh._running)


def test_apg_unsafe_momentum_runs_when_asked():
    guidance = gk.create("guidance", "apg", momentum=1.5, unsafe=True)
    assert guidance.momentum == 1.5


# -- processes: diffusers' schedules, explicit respacing ----------------------------------------------
def test_scaled_linear_and_explicit_beta_endpoints():
    d = gk.GaussianDiffusion.create(steps=1000, schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    expected = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    torch.testing.assert_close(d.betas, expected)
    lin = gk.GaussianDiffusion.create(steps=500, beta_start=0.0001, beta_end=0.02)
    torch.testing.assert_close(lin.betas, torch.linspace(0.0001, 0.02, 500, dtype=torch.float64))  # no 1000/T scaling
    assert "beta_start" not in gk.GaussianDiffusion.create().config.settings()
    assert d.config.settings()["beta_end"] == 0.012


def test_respace_keeps_the_process_and_explicit_timesteps():
    base = gk.GaussianDiffusion.create(steps=1000, schedule="cosine", learn_sigma=True)
    d = base.respace("timesteps:999,500,0")
    assert d.timestep_map.tolist() == [0, 500, 999] and d.config.schedule == "cosine" and d.config.learn_sigma
    torch.testing.assert_close(d.alphas_cumprod, base.alphas_cumprod[[0, 500, 999]])
    assert base.respace("ddim10").timestep_map.tolist() == gk.GaussianDiffusion.create(
        steps=1000, schedule="cosine", learn_sigma=True, respacing="ddim10").timestep_map.tolist()


# -- sampler.start: one fresh state per batch ------------------------------------------------------------
def test_a_sampler_with_start_gets_one_fresh_stepper_per_batch():
    started = []

    class Stateful:
        def start(self, diffusion):
            stepper = gk.create("sampler", "ddim")
            started.append(diffusion.num_steps)
            return stepper

        def step(self, *args, **kwargs):
            raise AssertionError("the loop steps through what start() returned")

    model = TOY.denoiser()
    plain = gk.sample(model, DIFF, (2, 1, 4, 4), sampler="ddim", seed=0, progress=False)
    for _ in range(2):
        assert torch.equal(gk.sample(model, DIFF, (2, 1, 4, 4), sampler=Stateful(), seed=0, progress=False), plain)
    fast = gk.sample(model, DIFF, (2, 1, 4, 4), sampler=Stateful(), seed=0, progress=False, fast=True)
    assert started == [5, 5, 5] and torch.allclose(fast, plain, atol=1e-5)
