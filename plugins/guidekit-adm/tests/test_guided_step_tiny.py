"""golden/guided_step_tiny.pt end to end: tiny ADM UNet + classifier through guidekit's
diffusion, ClassifierGuidance (constant, and entropy in ED-DPM compatibility mode) and samplers."""

from __future__ import annotations

import pytest
import torch
from guidekit_adm.encoder import EncoderUNetModel
from guidekit_adm.unet import UNetModel

import guidekit as gk
from guidekit.testing import load_golden

TOL = dict(atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def nets():
    unet_g, enc_g = load_golden("unet_tiny.pt"), load_golden("encoder_tiny.pt")
    unet = UNetModel(**unet_g["variants"]["legacy"]).eval()
    unet.load_state_dict(unet_g["state_dict"], strict=True)
    shared = {k: unet_g["state_dict"][k] for k in enc_g["state_dict_shared_keys"]}
    enc = EncoderUNetModel(**enc_g["config"]).eval()
    enc.load_state_dict(shared | enc_g["state_dict_own"], strict=True)
    return unet.float(), enc.float()


@pytest.mark.parametrize("prefix,respacing,sampler", [("250/ddpm", "250", "ddpm"), ("ddim25/ddim", "ddim25", "ddim")])
def test_guided_step_end_to_end(nets, prefix, respacing, sampler):
    unet, clf = nets
    g = load_golden("guided_step_tiny.pt")
    p = lambda k: g[f"{prefix}/{k}"]  # noqa: E731
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing=respacing)
    t_idx = p("t_index")
    t = diff.original_timestep(t_idx)
    assert torch.equal(t, p("t_seen_by_model")) and torch.equal(t, p("t_seen_by_classifier"))
    x, y, noise = g["x_t"], g["y"], g["noise"]
    with torch.no_grad():
        out = unet(x, t, y=y)
    torch.testing.assert_close(out, p("model_output"), **TOL)
    step = gk.create("sampler", sampler).step
    gamma = float(p("classifier_scale"))

    unguided = step(diff, out, x, t_idx, noise=noise, clip_denoised=True)
    torch.testing.assert_close(unguided.sample, p("gd_sample_unguided"), **TOL)

    plain = gk.ClassifierGuidance(clf, "constant", gamma=gamma)(x, t, y, t_index=t_idx, num_steps=diff.num_steps)
    torch.testing.assert_close(plain.state.logits, p("classifier_logits"), **TOL)
    torch.testing.assert_close(plain.state.grad, p("classifier_grad_unscaled"), atol=1e-7, rtol=1e-4)
    guided = step(diff, out, x, t_idx, guidance_grad=plain.grad, noise=noise, clip_denoised=True)
    torch.testing.assert_close(guided.sample, p("gd_sample_guided"), **TOL)
    torch.testing.assert_close(guided.sample, p("ed_noeds_sample"), **TOL)
    if sampler == "ddim":
        torch.testing.assert_close(guided.pred_xstart, p("gd_pred_xstart"), **TOL)

    eds = gk.ClassifierGuidance(clf, "entropy", gamma=gamma, normalizer="ed-dpm")(x, t, y, t_index=t_idx)
    torch.testing.assert_close(eds.state.entropy.float(), p("entropy"), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(eds.scale / gamma, p("eds_factor"), rtol=1e-5, atol=0)
    assert g["eds_normalizer"] == pytest.approx(torch.log(torch.tensor(1000.0, dtype=torch.float64)).item())
    out_eds = step(diff, out, x, t_idx, guidance_grad=eds.grad, noise=noise, clip_denoised=True)
    torch.testing.assert_close(out_eds.sample, p("ed_eds_sample"), **TOL)
    # ED-DPM multiplies the scale in last; passing it separately repeats that order
    out_eds = step(diff, out, x, t_idx, guidance_grad=eds.state.grad, guidance_scale=eds.scale, noise=noise)
    torch.testing.assert_close(out_eds.sample, p("ed_eds_sample"), **TOL)
    if sampler == "ddim":
        # at t=960 the guided x̂0 = √(1/ᾱ)·x − √(1/ᾱ−1)·ε' is a difference of large float32 terms;
        # one element lands 1 ulp of those terms (1.5e-5) off the reference: allow 2 ulp of them
        ref = p("ed_eds_pred_xstart")
        big = diff.extract(diff.sqrt_recip_alphas_cumprod, t_idx, x.shape) * x
        ulp = torch.finfo(torch.float32).eps * big.abs().max()
        torch.testing.assert_close(out_eds.pred_xstart, ref, atol=max(1e-5, 2 * ulp.item()), rtol=1e-4)
