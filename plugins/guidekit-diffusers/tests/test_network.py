"""from_diffusers: the process of the scheduler's betas, ε from ε/v/x0 predictions, the card, refusals."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler
from guidekit_diffusers import diffusion_settings, from_diffusers
from guidekit_diffusers.testing import K, tiny_unet

import guidekit as gk
from guidekit.errors import InvalidParameterError


@pytest.mark.parametrize("kwargs, schedule", [
    ({}, "linear"),
    ({"beta_start": 0.0002, "beta_end": 0.01, "num_train_timesteps": 500}, "linear"),
    ({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}, "scaled_linear"),
    ({"beta_schedule": "squaredcos_cap_v2"}, "cosine"),
])
def test_the_process_is_the_schedulers(unet, kwargs, schedule):
    scheduler = DDPMScheduler(**kwargs)
    model, diffusion = from_diffusers(unet, scheduler)
    assert diffusion.config.schedule == schedule and diffusion.num_steps == scheduler.config.num_train_timesteps
    assert (diffusion.config.beta_start is None) == (kwargs == {} or schedule == "cosine")
    torch.testing.assert_close(diffusion.alphas_cumprod.float(), scheduler.alphas_cumprod, rtol=2e-6, atol=1e-7)
    assert gk.GaussianDiffusion.from_model(model).config == diffusion.config


def test_card(cond_unet):
    model, _ = from_diffusers(cond_unet, DDIMScheduler(prediction_type="v_prediction"), null_label=K)
    card = model.card
    assert card["architecture"] == "diffusers UNet2DModel" and card["prediction_type"] == "v_prediction"
    assert card["diffusion"] == {"steps": 1000, "schedule": "linear", "learn_sigma": False}
    assert (card["image_size"], card["in_channels"], card["num_classes"], card["null_label"]) == (8, 1, K + 1, K)
    assert card["config"]["block_out_channels"] == [8, 16] and card["scheduler"]["class"] == "DDIMScheduler"
    assert model.num_classes == K + 1 and model.image_channels == 1


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_every_prediction_becomes_epsilon(unet, prediction):
    model, _ = from_diffusers(unet, DDIMScheduler(prediction_type=prediction))
    gen = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 1, 8, 8, generator=gen), torch.tensor([10, 900])
    with torch.no_grad():
        raw, eps = unet(x, t).sample, model(x, t)
    a = DDIMScheduler().alphas_cumprod[t].view(-1, 1, 1, 1)
    expected = {"epsilon": raw, "v_prediction": a.sqrt() * raw + (1 - a).sqrt() * x,
                "sample": (x - a.sqrt() * raw) / (1 - a).sqrt()}[prediction]
    torch.testing.assert_close(eps, expected, rtol=1e-4, atol=1e-5)  # x0 -> ε divides by √(1−ᾱ) ≈ 0.03 at t = 10


def test_learned_range_variance_is_read_as_adm_learned_sigma():
    unet = tiny_unet(out_channels=2)
    model, diffusion = from_diffusers(unet, DDPMScheduler(variance_type="learned_range"))
    assert diffusion.config.learn_sigma and model(torch.zeros(1, 1, 8, 8), torch.tensor([5])).shape == (1, 2, 8, 8)
    with pytest.raises(InvalidParameterError, match="variance_type"):
        from_diffusers(unet, DDPMScheduler())


def test_fixed_small_variance_is_sigma_small(unet):
    assert diffusion_settings(DDPMScheduler())["sigma_small"] is True
    assert "sigma_small" not in diffusion_settings(DDPMScheduler(variance_type="fixed_large"))
    assert "sigma_small" not in diffusion_settings(EulerDiscreteScheduler())


@pytest.mark.parametrize("scheduler, match", [
    (lambda: DDIMScheduler(rescale_betas_zero_snr=True), "zero terminal SNR"),
    (lambda: DDIMScheduler(trained_betas=[0.01] * 1000), "trained_betas"),
    (lambda: FlowMatchEulerDiscreteScheduler(), "not a diffusers DDPM-family scheduler"),
    (lambda: DDPMScheduler(beta_schedule="sigmoid"), "beta_schedule 'sigmoid'"),
])
def test_unsupported_schedulers_are_refused_by_name(unet, scheduler, match):
    with pytest.raises(InvalidParameterError, match=match):
        from_diffusers(unet, scheduler())


def test_bad_models_are_refused(unet):
    with pytest.raises(InvalidParameterError, match="diffusers model"):
        from_diffusers(torch.nn.Linear(2, 2), DDIMScheduler())
    with pytest.raises(InvalidParameterError, match="null_label 3 is not a class"):
        from_diffusers(unet, DDIMScheduler(), null_label=3)
    model, _ = from_diffusers(tiny_unet(num_classes=3), DDIMScheduler())
    with pytest.raises(InvalidParameterError, match="call it with labels y"):
        model(torch.zeros(1, 1, 8, 8), torch.tensor([1]))
