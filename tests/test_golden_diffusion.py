"""Schedules, respacing and one sampler step against the reference fixtures (golden/README §5-6)."""

from __future__ import annotations

import pytest
import torch

import guidekit as gk
from guidekit.samplers import DDIMSampler, DDPMSampler

RESPACINGS = {"full": "", "ddim25": "ddim25", "250": "250", "ddim50": "ddim50", "10,10,10": "10,10,10"}
ARRAYS = ["betas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance",
          "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"]


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("key", list(RESPACINGS))
def test_schedule_arrays_match_reference(schedules, schedule, key):
    diff = gk.GaussianDiffusion.create(steps=1000, schedule=schedule, respacing=RESPACINGS[key])
    assert torch.equal(diff.timestep_map, schedules[f"{schedule}/{key}/timestep_map"])
    for name in ARRAYS:
        ours, ref = getattr(diff, name), schedules[f"{schedule}/{key}/{name}"]
        assert ours.dtype == torch.float64
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0, msg=name)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_base_betas(schedules, schedule):
    from guidekit.schedules import beta_schedule

    torch.testing.assert_close(torch.from_numpy(beta_schedule(schedule, 1000)), schedules[f"{schedule}/base_betas"],
                               rtol=1e-12, atol=0)


def test_linear_schedule_scales_with_T(schedules):
    from guidekit.schedules import beta_schedule

    torch.testing.assert_close(torch.from_numpy(beta_schedule("linear", 100)), schedules["linear_T100/base_betas"],
                               rtol=1e-12, atol=0)


def test_respacing_table(respacing_table):
    for spec, expected in respacing_table["entries"].items():
        if isinstance(expected, dict):
            assert expected["error"] == "ValueError"
            with pytest.raises(ValueError) as info:
                gk.space_timesteps(1000, spec)
            assert isinstance(info.value, gk.InvalidParameterError)
            if not spec.startswith("ddim"):  # the reference's ddimN message prints T instead of N (notes §5.15)
                assert str(info.value) == expected["message"]
        else:
            assert sorted(gk.space_timesteps(1000, spec)) == expected, spec
    for spec, expected in respacing_table["entries_T4000"].items():
        assert sorted(gk.space_timesteps(4000, spec)) == expected, spec


def test_ddim_error_names_requested_count():
    with pytest.raises(gk.InvalidParameterError, match="exactly 999 steps"):
        gk.space_timesteps(1000, "ddim999")


CASES = [
    ("linear", "250", "ddpm"), ("cosine", "250", "ddpm"),
    ("linear", "ddim25", "ddim"), ("cosine", "ddim25", "ddim"), ("linear", "10,10,10", "ddim"),
]
TOL = dict(atol=1e-5, rtol=1e-5)


def _setup(g, schedule, respacing, sampler, clip):
    p = f"{schedule}/{respacing}/{sampler}/clip{clip}"
    diff = gk.GaussianDiffusion.create(steps=1000, schedule=schedule, learn_sigma=True, respacing=respacing)
    t = g[f"{p}/t_index"]
    return p, diff, t


@pytest.mark.parametrize("clip", [0, 1])
@pytest.mark.parametrize("schedule,respacing,sampler", CASES)
def test_p_mean_variance_and_timestep_mapping(sampler_step, schedule, respacing, sampler, clip):
    g = sampler_step
    p, diff, t = _setup(g, schedule, respacing, sampler, clip)
    assert torch.equal(diff.original_timestep(t), g[f"{p}/t_seen_by_model"])
    assert torch.equal(diff.original_timestep(t), g[f"{p}/t_seen_by_classifier"])
    out = diff.p_mean_variance(g["model_output"], g["x_t"], t, clip_denoised=bool(clip))
    for name in ["mean", "variance", "log_variance", "pred_xstart"]:
        torch.testing.assert_close(getattr(out, name), g[f"{p}/pmv_{name}"], **TOL, msg=name)


@pytest.mark.parametrize("clip", [0, 1])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddpm_step(sampler_step, schedule, clip):
    g = sampler_step
    p, diff, t = _setup(g, schedule, "250", "ddpm", clip)
    gamma, eds = g["classifier_scale"], g["eds_factor"]
    step = DDPMSampler().step
    kw = dict(noise=g["noise"], clip_denoised=bool(clip))
    torch.testing.assert_close(step(diff, g["model_output"], g["x_t"], t, **kw).sample, g[f"{p}/sample_unguided"], **TOL)
    guided = step(diff, g["model_output"], g["x_t"], t, guidance_grad=gamma * g["grad"], **kw)
    torch.testing.assert_close(guided.sample, g[f"{p}/sample_guided"], **TOL)
    torch.testing.assert_close(guided.sample, g[f"{p}/ed_sample_guided_scalar"], **TOL)
    s = (gamma * eds).float().view(-1, 1, 1, 1)
    eds_out = step(diff, g["model_output"], g["x_t"], t, guidance_grad=s * g["grad"], **kw)
    torch.testing.assert_close(eds_out.sample, g[f"{p}/ed_sample_guided_eds"], **TOL)
    # the guided mean is the sample at the last index (no noise there) -> check via variance shift
    pmv = diff.p_mean_variance(g["model_output"], g["x_t"], t, clip_denoised=bool(clip))
    torch.testing.assert_close(pmv.mean + pmv.variance * gamma * g["grad"], g[f"{p}/guided_mean"], **TOL)


@pytest.mark.parametrize("clip", [0, 1])
@pytest.mark.parametrize("eta", [0, 1])
@pytest.mark.parametrize("schedule,respacing", [("linear", "ddim25"), ("cosine", "ddim25"), ("linear", "10,10,10")])
def test_ddim_step(sampler_step, schedule, respacing, eta, clip):
    g = sampler_step
    p, diff, t = _setup(g, schedule, respacing, "ddim", clip)
    gamma, eds = g["classifier_scale"], g["eds_factor"]
    step = DDIMSampler(eta=eta).step
    kw = dict(noise=g["noise"], clip_denoised=bool(clip))
    q = f"{p}/eta{eta}"
    un = step(diff, g["model_output"], g["x_t"], t, **kw)
    torch.testing.assert_close(un.sample, g[f"{q}/sample_unguided"], **TOL)
    torch.testing.assert_close(un.pred_xstart, g[f"{q}/pred_xstart_unguided"], **TOL)
    guided = step(diff, g["model_output"], g["x_t"], t, guidance_grad=gamma * g["grad"], **kw)
    torch.testing.assert_close(guided.sample, g[f"{q}/sample_guided"], **TOL)
    torch.testing.assert_close(guided.pred_xstart, g[f"{q}/pred_xstart_guided"], **TOL)
    torch.testing.assert_close(guided.sample, g[f"{q}/ed_sample_guided_scalar"], **TOL)
    s = (gamma * eds).float().view(-1, 1, 1, 1)
    eds_out = step(diff, g["model_output"], g["x_t"], t, guidance_grad=s * g["grad"], **kw)
    torch.testing.assert_close(eds_out.sample, g[f"{q}/ed_sample_guided_eds"], **TOL)
    torch.testing.assert_close(eds_out.pred_xstart, g[f"{q}/ed_pred_xstart_guided_eds"], **TOL)
    if clip:
        assert guided.pred_xstart.abs().max() > 1  # the guided x̂0 is not re-clipped (notes §2.6)


@pytest.mark.parametrize("clip", [1])
def test_condition_score(sampler_step, clip):
    g = sampler_step
    p, diff, t = _setup(g, "linear", "ddim25", "ddim", clip)
    shape = g["x_t"].shape
    torch.testing.assert_close(diff.extract(diff.alphas_cumprod, t, shape)[:, 0, 0, 0], g[f"{p}/alpha_bar"].flatten(),
                               rtol=0, atol=0)
    torch.testing.assert_close(diff.extract(diff.alphas_cumprod_prev, t, shape)[:, 0, 0, 0],
                               g[f"{p}/alpha_bar_prev"].flatten(), rtol=0, atol=0)
    out = DDIMSampler().step(diff, g["model_output"], g["x_t"], t, guidance_grad=g["classifier_scale"] * g["grad"],
                             noise=g["noise"])
    torch.testing.assert_close(out.pred_xstart, g[f"{p}/condition_score_pred_xstart"], **TOL)
    torch.testing.assert_close(diff.q_posterior_mean(out.pred_xstart, g["x_t"], t), g[f"{p}/condition_score_mean"], **TOL)
