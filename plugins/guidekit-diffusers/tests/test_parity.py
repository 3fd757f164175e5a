"""Parity with diffusers' own scheduler loops, from the x_T that guidekit's callback reports at step 0."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler
from guidekit_diffusers import from_diffusers, respacing_of
from guidekit_diffusers.testing import K

import guidekit as gk
from guidekit.errors import InvalidParameterError

SHAPE = (3, 1, 8, 8)


def guidekit_run(model, diffusion, sampler, *, seed=3, y=None, shape=SHAPE, offset=0):
    """(samples, x_T) of gk.sample with clipping off."""
    seen = {}

    def first(info):
        if info.step == 0:
            seen["x_T"] = info.x_t.clone()

    out = gk.sample(model, diffusion, shape, sampler=sampler, clip_denoised=False, seed=seed, callback=first,
                    progress=False, y=y, sample_offset=offset)
    return out, seen["x_T"]


def diffusers_loop(unet, scheduler, x_T, steps, y=None, **step_kwargs):
    """The plain diffusers sampling loop from x_T (scaled by the scheduler's init_noise_sigma)."""
    scheduler.set_timesteps(steps)
    x = x_T * scheduler.init_noise_sigma
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(scheduler.scale_model_input(x, t), t, class_labels=y).sample
            x = scheduler.step(out, t, x, **step_kwargs).prev_sample
    return x


# ε-models need a sensible ε for bounded samples: random weights give x̂0 = x_t/√ᾱ ≈ 158·x_T at t = 999 with the
# default betas, where float32 alone rounds at 1e-5. So the ε case uses a short-range schedule (beta_end=0.002);
# v- and x0-prediction stay bounded with the default betas.
CASES = {
    "epsilon": dict(beta_end=0.002),
    "v_prediction": dict(prediction_type="v_prediction"),
    "sample": dict(prediction_type="sample"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ddim_equals_diffusers_ddim_loop(unet, case):
    scheduler = DDIMScheduler(clip_sample=False, **CASES[case])
    model, diffusion = from_diffusers(unet, scheduler)
    ddim = gk.create("sampler", "ddim", eta=0.0)
    out, x_T = guidekit_run(model, diffusion.respace("ddim10"), ddim)
    ref = diffusers_loop(unet, scheduler, x_T, 10, eta=0.0)
    assert out.abs().max() < 20  # bounded samples, so 1e-5 is a real test of the arithmetic
    assert (out - ref).abs().max() <= 1e-5
    same, _ = guidekit_run(model, gk.GaussianDiffusion.from_model(model, respacing="ddim10"), ddim)
    assert torch.equal(same, out)


def test_class_conditional_unet_gets_its_labels(cond_unet):
    scheduler = DDIMScheduler(clip_sample=False, prediction_type="v_prediction")
    model, diffusion = from_diffusers(cond_unet, scheduler, null_label=K)
    y = torch.tensor([0, 2, 3])
    out, x_T = guidekit_run(model, diffusion.respace("ddim10"), gk.create("sampler", "ddim"), y=y)
    assert (out - diffusers_loop(cond_unet, scheduler, x_T, 10, y=y, eta=0.0)).abs().max() <= 1e-5
    other, _ = guidekit_run(model, diffusion.respace("ddim10"), gk.create("sampler", "ddim"), y=torch.tensor([1, 1, 1]))
    assert not torch.allclose(other, out)


def test_adm_ddimN_and_diffusers_leading_differ_for_some_N_and_respacing_of_restores_parity(unet):
    """ADM's "ddimN" takes the smallest stride giving N steps; diffusers' "leading" takes T//N. For T = 1000 they
    agree when N divides 1000 and differ otherwise (N = 15: strides 67 and 66)."""
    scheduler = DDIMScheduler(clip_sample=False, prediction_type="v_prediction")
    model, diffusion = from_diffusers(unet, scheduler)
    for n, agree in ((10, True), (25, True), (15, False), (30, False)):
        scheduler.set_timesteps(n)
        assert (sorted(scheduler.timesteps.tolist()) == diffusion.respace(f"ddim{n}").timestep_map.tolist()) == agree
    spec = respacing_of(scheduler, 15)
    assert spec == "timesteps:" + ",".join(str(66 * k) for k in range(14, -1, -1))
    out, x_T = guidekit_run(model, diffusion.respace(spec), gk.create("sampler", "ddim"))
    assert (out - diffusers_loop(unet, scheduler, x_T, 15, eta=0.0)).abs().max() <= 1e-5


SOLVERS = {
    "dpmpp-2m": lambda **kw: DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **kw),
    "unipc": lambda **kw: UniPCMultistepScheduler(**kw),
    "euler": lambda **kw: EulerDiscreteScheduler(**kw),
}


@pytest.mark.parametrize(("name", "steps"), [("dpmpp-2m", 10), ("dpmpp-2m", 20), ("unipc", 10), ("unipc", 20),
                                            ("euler", 10)])
def test_solver_equals_its_diffusers_scheduler_loop(unet, name, steps):
    """Each solver, unguided, against the diffusers scheduler it wraps with that scheduler's default spacing
    (Euler's default "linspace" has fractional timesteps, so Euler runs "leading" here)."""
    spacing = {"timestep_spacing": "leading"} if name == "euler" else {}
    scheduler = SOLVERS[name](prediction_type="v_prediction", **spacing)
    model, diffusion = from_diffusers(unet, scheduler)
    out, x_T = guidekit_run(model, diffusion.respace(respacing_of(scheduler, steps)), gk.create("sampler", name))
    ref = diffusers_loop(unet, SOLVERS[name](prediction_type="v_prediction", **spacing), x_T, steps)
    assert out.abs().max() < 20 and (out - ref).abs().max() <= 1e-4


def test_available_samplers():
    assert {"ddim", "ddpm", "dpmpp-2m", "euler", "unipc"} <= set(gk.available("sampler"))


@pytest.mark.parametrize("name", ["dpmpp-2m", "unipc"])
def test_sample_i_is_the_same_whatever_the_batch_and_history_is_per_batch(unet, name):
    scheduler = DDIMScheduler(prediction_type="v_prediction")
    model, diffusion = from_diffusers(unet, scheduler, respacing="ddim8")
    sampler = gk.create("sampler", name)
    whole, _ = guidekit_run(model, diffusion, sampler, shape=(4, 1, 8, 8))
    tail, _ = guidekit_run(model, diffusion, sampler, shape=(2, 1, 8, 8), offset=2)
    torch.testing.assert_close(tail, whole[2:], rtol=1e-5, atol=1e-5)  # batched convolutions round differently
    again, _ = guidekit_run(model, diffusion, sampler, shape=(4, 1, 8, 8))
    assert torch.equal(again, whole)  # a second batch starts with an empty history


def test_solvers_step_only_through_a_run_in_order(unet):
    model, diffusion = from_diffusers(unet, DDIMScheduler(prediction_type="v_prediction"), respacing="ddim4")
    sampler, x = gk.create("sampler", "dpmpp-2m"), torch.zeros(SHAPE)
    with pytest.raises(InvalidParameterError, match="start"):
        sampler.step(diffusion, x, x, 3)
    run = sampler.start(diffusion)
    run.step(diffusion, x, x, 3, clip_denoised=False)
    with pytest.raises(InvalidParameterError, match="in order"):
        run.step(diffusion, x, x, 1, clip_denoised=False)


def test_euler_on_the_same_timesteps_is_ddim(unet):
    """Euler on the probability-flow ODE in σ is DDIM (η = 0) written in x/√ᾱ: the same samples up to rounding."""
    model, diffusion = from_diffusers(unet, DDIMScheduler(prediction_type="v_prediction"), respacing="ddim10")
    euler, _ = guidekit_run(model, diffusion, gk.create("sampler", "euler"))
    ddim, _ = guidekit_run(model, diffusion, gk.create("sampler", "ddim"))
    torch.testing.assert_close(euler, ddim, rtol=1e-5, atol=1e-5)
