"""The fast path (``gk.sample(..., fast=True)``) against the float32 path, on the CPU with bf16/fp16 autocast.

Stated tolerance (errors relative to the largest |value| of the fp32 result for network calls;
absolute, in the [-1, 1] image range, for whole trajectories):

==========================  ========  ==========  ===========================
                            float32   float16     bfloat16
==========================  ========  ==========  ===========================
UNet output, logits         1e-5      5e-3        3e-2
∇ₓ log p(y|x_t)             1e-5      5e-3        5e-2
DDIM-25 trajectory, max     1e-4      2e-2        1e-1  (6 uint8 levels)
DDIM-25 trajectory, mean    1e-6      1e-4        1e-3
==========================  ========  ==========  ===========================
"""

from __future__ import annotations

import guidekit_adm as adm
import pytest
import torch

import guidekit as gk
from guidekit.errors import NonFiniteError
from guidekit.fast import FastConfig, as_fast_config, classifier_call, unet_call

CPU = torch.device("cpu")
NET_TOL = {"float32": (1e-5, 1e-5), "float16": (5e-3, 5e-3), "bfloat16": (3e-2, 5e-2)}  # (outputs/logits, grad)
TRAJ_TOL = {"float32": (1e-4, 1e-6), "float16": (2e-2, 1e-4), "bfloat16": (1e-1, 1e-3)}  # (max, mean)

UNET_FLAGS = ("--image_size 64 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1,1 --attention_resolutions 8 "
              "--num_head_channels 32 --learn_sigma True --resblock_updown True --use_scale_shift_norm True")
CLASSIFIER_FLAGS = "--image_size 64 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 8"


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("prefix", ["250/ddpm", "ddim25/ddim"])
def test_fast_network_calls_match_the_golden_fp32_results(dtype, prefix, guided_step_tiny, unet_model, classifier_model):
    g = guided_step_tiny
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing=prefix.split("/")[0])
    t = diff.original_timestep(g[f"{prefix}/t_index"])
    x = g["x_t"].contiguous(memory_format=torch.channels_last)
    config = FastConfig(dtype=dtype)
    out = unet_call(unet_model, True, config, CPU)(x, t, g["y"])
    logits, grad = classifier_call(classifier_model, config, CPU)(x, t, g["y"])
    tol, grad_tol = NET_TOL[dtype]
    assert out.dtype == logits.dtype == grad.dtype == torch.float32
    assert _rel(out, g[f"{prefix}/model_output"]) <= tol
    assert _rel(logits, g[f"{prefix}/classifier_logits"]) <= tol
    assert _rel(grad, g[f"{prefix}/classifier_grad_unscaled"]) <= grad_tol


def _random_adm(flags: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = adm.create_model(flags).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    return model


@pytest.fixture(scope="module")
def random_nets():
    """A small class-conditional 64x64 ADM UNet and classifier with random weights."""
    return _random_adm(UNET_FLAGS + " --class_cond True", 0), _random_adm(CLASSIFIER_FLAGS, 1)


def _trajectories(unet, clf, shape, scaler, dtype, respacing="ddim25", sampler="ddim", num_classes=None):
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing=respacing)
    kw = dict(sampler=sampler, guidance=gk.ClassifierGuidance(clf, scaler, gamma=4.0), seed=5, progress=False,
              num_classes=num_classes)
    return gk.sample(unet, diff, shape, **kw), gk.sample(unet, diff, shape, fast=FastConfig(dtype=dtype), **kw)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("scaler", ["constant", "entropy"])
def test_fast_trajectory_agrees_with_fp32_on_the_golden_tiny_models(dtype, scaler, unet_model, classifier_model):
    ref, fast = _trajectories(unet_model, classifier_model, (4, 3, 8, 8), scaler, dtype)
    max_tol, mean_tol = TRAJ_TOL[dtype]
    diff = (fast - ref).abs()
    assert diff.max() <= max_tol and diff.mean() <= mean_tol
    assert ref.abs().mean() > 0.1  # a real trajectory, not all zeros


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_trajectory_agrees_with_fp32_on_random_adm_configs(dtype, random_nets):
    unet, clf = random_nets
    ref, fast = _trajectories(unet, clf, (2, 3, 64, 64), "entropy", dtype, respacing="ddim5")
    max_tol, mean_tol = TRAJ_TOL[dtype]
    assert (fast - ref).abs().max() <= max_tol and (fast - ref).abs().mean() <= mean_tol
    # unconditional UNet (the 256x256 release layout in small), DDPM with noise
    uncond = _random_adm(UNET_FLAGS, 2)
    ref, fast = _trajectories(uncond, clf, (2, 3, 64, 64), "constant", dtype, respacing="4", sampler="ddpm",
                              num_classes=1000)
    assert (fast - ref).abs().max() <= max_tol and (fast - ref).abs().mean() <= mean_tol


def test_fast_noise_is_per_sample_and_batch_independent(unet_model, classifier_model):
    """Sample i draws from its own generator (one call per noise block), whatever the batch or the block."""
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing="6")
    kw = dict(sampler="ddpm", guidance=gk.ClassifierGuidance(classifier_model, "constant", gamma=2.0), seed=3,
              progress=False)
    full = gk.sample(unet_model, diff, (3, 3, 8, 8), fast=FastConfig(dtype="float32"), **kw)
    part = gk.sample(unet_model, diff, (2, 3, 8, 8), fast=FastConfig(dtype="float32", noise_block=2),
                     sample_offset=1, **kw)
    torch.testing.assert_close(part, full[1:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(full[0], full[1], atol=1e-2)


class _Poisoned(torch.nn.Module):
    """Wraps a UNet; from original timestep ``below`` on, sample 1's output is NaN."""

    def __init__(self, net: torch.nn.Module, below: int) -> None:
        super().__init__()
        self.net, self.below, self.num_classes = net, below, net.num_classes

    def forward(self, x, t, y=None):
        out = self.net(x, t, y=y)
        mask = torch.zeros_like(out, dtype=torch.bool)
        mask[1] = True
        return torch.where(mask & (t < self.below).view(-1, 1, 1, 1), float("nan"), out)


@pytest.mark.parametrize("check_every", [0, 2])
def test_fast_non_finite_flag_names_step_t_and_sample(check_every, unet_model):
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing="ddim5")
    seen: list[int] = []
    with pytest.raises(NonFiniteError, match=r"non-finite sample at step 2 \(t=400\) for samples \[8\]"):
        gk.sample(_Poisoned(unet_model, below=500), diff, (2, 3, 8, 8), sample_offset=7, progress=False,
                  fast=FastConfig(dtype="float32", check_every=check_every), callback=lambda s: seen.append(s.step))
    # read every 2 steps: raised at step 3, before its callback; read once: after the loop
    assert seen[-1] == (2 if check_every else 4)


def test_fast_compiles_once_per_shape(unet_model, classifier_model):
    """compile=True: one compilation per network and shape, reused by later calls (a counting backend)."""
    graphs: list[int] = []

    def backend(gm, example_inputs):
        graphs.append(len(example_inputs))
        return gm.forward

    config = FastConfig(dtype="float32", compile=True, compile_backend=backend)
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing="ddim3")
    kw = dict(guidance=gk.ClassifierGuidance(classifier_model, "entropy", gamma=2.0), progress=False)
    first = gk.sample(unet_model, diff, (2, 3, 8, 8), fast=config, seed=1, **kw)
    compiled = len(graphs)
    assert compiled >= 2  # the UNet and the classifier
    gk.sample(unet_model, diff, (2, 3, 8, 8), fast=config, seed=2, **kw)
    assert len(graphs) == compiled  # same shapes: reused
    gk.sample(unet_model, diff, (3, 3, 8, 8), fast=config, seed=1, **kw)
    assert len(graphs) > compiled  # a new batch size compiles again
    torch.testing.assert_close(first, gk.sample(unet_model, diff, (2, 3, 8, 8), fast=FastConfig(dtype="float32"),
                                                seed=1, **kw), atol=1e-5, rtol=1e-5)


def test_fast_options():
    assert as_fast_config(True) == FastConfig() and as_fast_config(False) is None
    assert as_fast_config({"dtype": "float16"}).dtype == "float16"
    with pytest.raises(gk.InvalidParameterError, match="FastConfig"):
        as_fast_config({"dtype": "int8"})
    with pytest.raises(gk.InvalidParameterError, match="fast must be"):
        as_fast_config("yes")
