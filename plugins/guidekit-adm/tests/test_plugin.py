"""The networks inside guidekit: entry-point registration, the core sampler and loop (``guidekit sample`` on
ADM networks is tested in tests/test_sample_cli.py)."""

from __future__ import annotations

import guidekit_adm as adm
import pytest
import torch

import guidekit as gk

UNET_FLAGS = (
    "--image_size 64 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1,1 --attention_resolutions 8 "
    "--num_head_channels 32 --learn_sigma True --class_cond True --resblock_updown True"
)
CLASSIFIER_FLAGS = "--image_size 64 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 8"


def test_networks_are_registered_through_the_entry_point():
    names = gk.available("network")
    for name in adm.release_names() + ["adm-unet", "adm-superres", "adm-classifier"]:
        assert name in names
    providers = {c.name: c.provider for c in gk.describe("network")}
    assert providers["256x256_diffusion_uncond"] == "guidekit-adm"


def test_create_through_the_registry():
    model = gk.create("network", "256x256_classifier", device="meta")
    assert isinstance(model, adm.EncoderUNetModel) and model.out_channels == 1000
    model = gk.create("network", "64x64_diffusion", device="meta", dropout=0.0)
    assert model.dropout == 0.0 and model.num_classes == 1000
    raw = gk.create("network", "adm-unet", image_size=8, in_channels=3, model_channels=32, out_channels=6,
                    num_res_blocks=1, attention_resolutions=(2,), channel_mult=(1, 1), num_head_channels=8)
    assert isinstance(raw, adm.UNetModel)
    with pytest.raises(gk.InvalidParameterError):
        gk.create("network", "adm-classifier", image_size=8, bogus=1)


@pytest.mark.parametrize("prefix", ["250/ddpm", "ddim25/ddim"])
def test_guided_step_with_core_sampler(prefix, guided_step_tiny, unet_model, classifier_model):
    """golden/guided_step_tiny.pt: our networks driven by guidekit's diffusion, guidance and sampler."""
    g = guided_step_tiny
    respacing, sampler_name = prefix.split("/")
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing=respacing)
    t_index = g[f"{prefix}/t_index"]
    t = diff.original_timestep(t_index)
    assert t.tolist() == g[f"{prefix}/t_seen_by_model"].tolist() == g[f"{prefix}/t_seen_by_classifier"].tolist()
    with torch.no_grad():
        out = unet_model(g["x_t"], t, y=g["y"])
    torch.testing.assert_close(out, g[f"{prefix}/model_output"], atol=1e-5, rtol=1e-4)
    gamma = g[f"{prefix}/classifier_scale"]
    guidance = gk.ClassifierGuidance(classifier_model, "constant", gamma=gamma)
    result = guidance(g["x_t"], t, g["y"], t_index=t_index, num_steps=diff.num_steps)
    torch.testing.assert_close(result.state.logits, g[f"{prefix}/classifier_logits"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result.state.grad, g[f"{prefix}/classifier_grad_unscaled"], atol=1e-7, rtol=1e-4)
    sampler = gk.create("sampler", sampler_name)
    stepped = sampler.step(diff, out, g["x_t"], t_index, guidance_grad=result.grad, noise=g["noise"],
                           clip_denoised=True)
    torch.testing.assert_close(stepped.sample, g[f"{prefix}/gd_sample_guided"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(stepped.pred_xstart, g[f"{prefix}/gd_pred_xstart"], atol=1e-5, rtol=1e-4)


def test_core_sample_loop_with_upsampler_adapter():
    torch.manual_seed(0)
    model = adm.SuperResModel(16, 3, 32, 6, 1, (2,), channel_mult=(1, 1), num_head_channels=8).eval()
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing="ddim2")
    x0 = gk.sample(adm.with_low_res(model, torch.zeros(2, 3, 8, 8)), diff, (2, 3, 16, 16), progress=False)
    assert x0.shape == (2, 3, 16, 16) and torch.isfinite(x0).all()
