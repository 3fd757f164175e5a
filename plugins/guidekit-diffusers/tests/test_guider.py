"""GuidekitGuider: a diffusers BaseGuidance whose weight comes from a guidekit scaler, driven the way diffusers'
modular pipelines drive a guider (set_state, prepare_inputs, one denoiser call per batch, then the guider)."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.guiders import BaseGuidance, ClassifierFreeGuidance, ClassifierFreeZeroStarGuidance
from guidekit_diffusers import GuidekitGuider
from guidekit_diffusers.testing import K

import guidekit as gk
from guidekit.errors import InvalidParameterError, MissingGuidanceFieldError

TIMESTEPS = torch.tensor([999, 749, 499, 249])


def denoise(guider, unet, x, t, step, n=len(TIMESTEPS)):
    """One step of a modular pipeline's denoise block: the guider decides the batches, the UNet predicts each."""
    guider.set_state(step=step, num_inference_steps=n, timestep=t)
    labels = torch.tensor([0, 1, 3])
    batches = guider.prepare_inputs({"class_labels": (labels, torch.full_like(labels, K))})
    for batch in batches:
        guider.prepare_models(unet)
        with torch.no_grad():
            batch.noise_pred = unet(x, t, class_labels=batch.class_labels).sample
        guider.cleanup_models(unet)
    return guider(batches)[0], len(batches)


def run_both(mine, theirs, unet):
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return [(denoise(mine, unet, x, t, i), denoise(theirs, unet, x, t, i)) for i, t in enumerate(TIMESTEPS)]


def test_constant_scaler_is_diffusers_cfg(cond_unet):
    mine = GuidekitGuider(guidance="classifier-free", scaler="constant", gamma=5.0)
    assert isinstance(mine, BaseGuidance)
    for (pred, n_mine), (ref, n_ref) in run_both(mine, ClassifierFreeGuidance(guidance_scale=5.0), cond_unet):
        assert n_mine == n_ref == 2 and torch.equal(pred, ref)


def test_start_stop_and_w_1_ask_for_the_conditional_batch_alone(cond_unet):
    mine = GuidekitGuider(scaler="constant", gamma=3.0, start=0.25, stop=0.75)
    results = run_both(mine, ClassifierFreeGuidance(guidance_scale=3.0, start=0.25, stop=0.75), cond_unet)
    assert [m[1] for m, _ in results] == [r[1] for _, r in results] == [1, 2, 2, 1]
    assert all(torch.equal(m[0], r[0]) for m, r in results)
    plain = GuidekitGuider(scaler="constant", gamma=1.0)
    plain.set_state(step=0, num_inference_steps=4, timestep=TIMESTEPS[0])
    assert plain.num_conditions == 1


def test_interval_and_timestep_scalers_set_w_per_step(cond_unet):
    interval = GuidekitGuider(scaler="interval", scaler_params={"gamma": 4.0, "start": 200, "end": 600})
    counts = []
    for i, t in enumerate(TIMESTEPS):
        interval.set_state(step=i, num_inference_steps=4, timestep=t)
        counts.append(interval.num_conditions)
    assert counts == [1, 1, 2, 2]
    schedule = GuidekitGuider(scaler="timestep", gamma=5.0, schedule="linear")
    for i, t in enumerate(TIMESTEPS):
        schedule.set_state(step=i, num_inference_steps=4, timestep=t)
        expected = 1 + 4.0 * 2 * (1 - int(t) / 1000)  # n + (γ − n)·2(1 − t/T), neutral n = 1
        assert math.isclose(float(schedule.scale(1)[0]), expected, rel_tol=1e-6)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    pred, n = denoise(schedule, cond_unet, x, TIMESTEPS[2], 2)
    ref, _ = denoise(ClassifierFreeGuidance(guidance_scale=1 + 4.0 * 2 * (1 - 499 / 1000)), cond_unet, x, TIMESTEPS[2], 2)
    assert n == 2 and torch.allclose(pred, ref, atol=1e-6)


def test_rescale_in_output_space_is_diffusers_guidance_rescale(cond_unet):
    mine = GuidekitGuider(guidance="cfg-rescale", scaler="constant", gamma=5.0, phi=0.7, space="output")
    for (pred, _), (ref, _) in run_both(mine, ClassifierFreeGuidance(guidance_scale=5.0, guidance_rescale=0.7), cond_unet):
        torch.testing.assert_close(pred, ref, rtol=1e-5, atol=1e-6)


def test_cfg_zero_star_is_diffusers_zero_star(cond_unet):
    mine = GuidekitGuider(guidance="cfg-zero-star", scaler="constant", gamma=4.0, zero_init_steps=1)
    results = run_both(mine, ClassifierFreeZeroStarGuidance(guidance_scale=4.0, zero_init_steps=1), cond_unet)
    assert not results[0][0][0].any() and results[0][0][1] == 1  # the zeroed first step needs one batch only
    for (pred, _), (ref, _) in results[1:]:
        torch.testing.assert_close(pred, ref, rtol=1e-5, atol=1e-6)


def test_what_a_guider_cannot_do_is_refused_by_name():
    with pytest.raises(InvalidParameterError, match="needs x_t and the process"):
        GuidekitGuider(guidance="apg", gamma=3.0)
    with pytest.raises(InvalidParameterError, match="needs x_t and the process"):
        GuidekitGuider(guidance="cfg-rescale", gamma=3.0)  # space="x0" is the default
    guider = GuidekitGuider(scaler="entropy", gamma=3.0)
    guider.set_state(step=0, num_inference_steps=4, timestep=TIMESTEPS[0])
    with pytest.raises(MissingGuidanceFieldError, match="logits"):
        guider.num_conditions


def test_new_keeps_the_scaler_parameters():
    guider = GuidekitGuider(scaler="timestep", gamma=4.0, schedule="cosine", scaler_params={"direction": "decreasing"})
    copy = guider.new(stop=0.5)
    assert copy.config["guidance_params"] == {"gamma": 4.0, "schedule": "cosine"} and copy.config["stop"] == 0.5
    assert copy.strategy.scaler == gk.create("scaler", "timestep", gamma=4.0, schedule="cosine", direction="decreasing")
    built = GuidekitGuider(scaler=gk.create("scaler", "interval", gamma=4.0, start=200, end=600))
    assert built.strategy.scaler.end == 600
