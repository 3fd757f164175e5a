"""The solvers under every guidance kind and every registered scaler (tiny models, 4 steps)."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler
from guidekit_diffusers import from_diffusers
from guidekit_diffusers.testing import K

import guidekit as gk

SOLVERS = ("dpmpp-2m", "euler", "unipc")
SHAPE = (3, 1, 8, 8)
Y = torch.tensor([0, 1, 3])


def run(model, diffusion, solver, guidance=None, y=Y, clip=True):
    return gk.sample(model, diffusion, SHAPE, sampler=solver, guidance=guidance, y=y, seed=1, progress=False,
                     clip_denoised=clip)


class EpsilonCorrected(torch.nn.Module):
    """ε − γ·√(1−ᾱ_t)·∇ log p(y|x_t): classifier guidance folded into the model, for an unguided solver."""

    def __init__(self, model, classifier, gamma: float) -> None:
        super().__init__()
        self.model, self.classifier, self.gamma = model, classifier, gamma
        self.num_classes = None

    def forward(self, x, t):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            logp = torch.log_softmax(self.classifier(x_in, t), dim=-1)[torch.arange(len(x)), Y].sum()
            grad = torch.autograd.grad(logp, x_in)[0]
        a = self.model.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        return self.model(x, t) - self.gamma * (1 - a).sqrt() * grad


@pytest.mark.parametrize("solver", SOLVERS)
def test_classifier_guidance_is_the_epsilon_correction(unet, classifier, solver):
    model, diffusion = from_diffusers(unet, DDIMScheduler(prediction_type="v_prediction"), respacing="ddim4")
    guidance = gk.create("guidance", "classifier", classifier=classifier, gamma=3.0)
    guided = run(model, diffusion, solver, guidance, clip=False)  # with clipping ε' is taken from the clipped x̂0
    folded = run(EpsilonCorrected(model, classifier, 3.0), diffusion, solver, clip=False)
    torch.testing.assert_close(guided, folded, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(guided, run(model, diffusion, solver, clip=False), atol=1e-3)


@pytest.mark.parametrize("solver", SOLVERS)
def test_classifier_guidance_with_every_registered_scaler(unet, classifier, solver):
    model, diffusion = from_diffusers(unet, DDIMScheduler(prediction_type="v_prediction"), respacing="ddim4")
    plain = run(model, diffusion, solver)
    names = gk.available("scaler")
    assert {"constant", "interval", "timestep", "gradnorm", "entropy"} <= set(names)
    scalers = {name: gk.create("scaler", name, gamma=2.0) for name in names}
    scalers["a plugin's own (callable)"] = lambda state: 1.0 + state.entropy.float()  # reads the logits
    for name, scaler in scalers.items():
        out = run(model, diffusion, solver, gk.ClassifierGuidance(classifier, scaler))
        assert torch.isfinite(out).all() and not torch.allclose(out, plain, atol=1e-4), name


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_cfg_kind_drives_every_solver(cond_unet, solver):
    model, diffusion = from_diffusers(cond_unet, DDIMScheduler(prediction_type="v_prediction"), null_label=K,
                                      respacing="ddim4")
    conditional = run(model, diffusion, solver)
    kinds = {
        "classifier-free": {}, "cfg-rescale": {"phi": 0.7}, "cfg-rescale output": {"phi": 0.7, "space": "output"},
        "apg": {"momentum": -0.5, "norm_threshold": 2.0}, "cfg-zero-star": {},
    }
    outs = {}
    for label, params in kinds.items():
        guidance = gk.create("guidance", label.split()[0], scaler="interval", gamma=3.0, start=0, end=800, **params)
        outs[label] = run(model, diffusion, solver, guidance)
        assert torch.isfinite(outs[label]).all() and not torch.allclose(outs[label], conditional, atol=1e-4), label
    assert not torch.allclose(outs["cfg-rescale"], outs["cfg-rescale output"], atol=1e-4)
