"""The sampling loop and classifier guidance on the exact toy model (guidekit.toy)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import guidekit as gk
from guidekit.samplers import DDIMSampler, DDPMSampler
from guidekit.testing.contracts import ScalerContract
from guidekit.toy import GaussianMixtureToy
from guidekit.trace import GuidanceTrace


@pytest.fixture(scope="module")
def toy() -> GaussianMixtureToy:
    return GaussianMixtureToy(num_classes=5, shape=(1, 4, 4), std=0.5, separation=0.3)


def diffusion(respacing: str = "ddim10") -> gk.GaussianDiffusion:
    return gk.GaussianDiffusion.create(steps=1000, learn_sigma=False, respacing=respacing)


class CountingClassifier(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls, self.t_seen = inner, 0, []

    def forward(self, x, t):
        self.calls += 1
        self.t_seen.append(t.clone())
        return self.inner(x, t)


@pytest.mark.parametrize("sampler", [DDIMSampler(), DDIMSampler(eta=1.0), DDPMSampler()])
def test_sample_is_reproducible_per_sample_whatever_the_batch(toy, sampler):
    guidance = gk.ClassifierGuidance(toy.classifier(), gk.create("scaler", "entropy", gamma=2.0))
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    kw = dict(sampler=sampler, guidance=guidance, seed=7, progress=False)
    full = gk.sample(toy.denoiser(), diffusion(), (6, 1, 4, 4), y=y, **kw)
    again = gk.sample(toy.denoiser(), diffusion(), (6, 1, 4, 4), y=y, **kw)
    assert torch.equal(full, again)
    tail = gk.sample(toy.denoiser(), diffusion(), (2, 1, 4, 4), y=y[4:], sample_offset=4, **kw)
    torch.testing.assert_close(tail, full[4:], rtol=0, atol=1e-6)
    other_seed = gk.sample(toy.denoiser(), diffusion(), (6, 1, 4, 4), y=y, **{**kw, "seed": 8})
    assert not torch.allclose(other_seed, full)


def test_one_classifier_call_per_step_at_original_timesteps(toy):
    clf = CountingClassifier(toy.classifier())
    diff = diffusion("ddim10")
    seen = []
    gk.sample(toy.denoiser(), diff, (3, 1, 4, 4), guidance=gk.ClassifierGuidance(clf, "constant", gamma=1.0),
              y=torch.tensor([0, 1, 2]), progress=False, callback=lambda info: seen.append(info.t_index))
    assert clf.calls == diff.num_steps == 10
    assert [int(t[0]) for t in clf.t_seen] == list(range(900, -1, -100))
    assert seen == list(range(9, -1, -1))


def test_guidance_gradient_is_wrt_x_t_only(toy):
    """∇ₓ Σ log p(y|x_t) per sample, no parameter gradients accumulate; matches finite differences."""
    clf = toy.classifier()
    w = torch.nn.Parameter(torch.ones(()))
    scaled = lambda x, t: clf(x, t) * w  # noqa: E731
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    t = torch.tensor([500, 100])
    y = torch.tensor([1, 3])
    res = gk.ClassifierGuidance(scaled, "constant", gamma=2.0)(x, t, y)
    assert w.grad is None
    eps = 1e-6
    d = torch.zeros_like(x)
    d[0, 0, 1, 2] = eps
    lp = lambda z: torch.log_softmax(clf(z, t), -1)[0, 1]  # noqa: E731
    fd = (lp(x + d) - lp(x - d)) / (2 * eps)
    assert res.grad[0, 0, 1, 2].item() == pytest.approx(2.0 * fd.item(), rel=1e-5)
    torch.testing.assert_close(res.scale, torch.full((2,), 2.0, dtype=torch.float64))


def test_zero_scale_skips_the_backward_pass(toy):
    class NoBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            raise AssertionError("backward pass ran")

    clf = toy.classifier()
    guarded = lambda x, t: clf(NoBackward.apply(x), t)  # noqa: E731
    x = torch.randn(3, 1, 4, 4)
    res = gk.ClassifierGuidance(guarded, "interval", gamma=3.0, start=0, end=100)(x, torch.tensor([900] * 3), torch.tensor([0, 1, 2]))
    assert torch.equal(res.grad, torch.zeros_like(x)) and torch.equal(res.scale, torch.zeros(3))
    with pytest.raises(AssertionError, match="backward pass ran"):
        gk.ClassifierGuidance(guarded, "constant")(x, torch.tensor([900] * 3), torch.tensor([0, 1, 2]))


def test_guidance_steers_towards_the_label_and_eds_keeps_scale_up(toy):
    y = torch.arange(60) % 5
    diff = diffusion("ddim25")
    acc = {}
    traces = {}
    for name in ("constant", "entropy"):
        tr = GuidanceTrace()
        g = gk.ClassifierGuidance(toy.classifier(), name, gamma=1.0)
        x = gk.sample(toy.denoiser(), diff, (60, 1, 4, 4), guidance=g, y=y, progress=False, callback=tr)
        acc[name] = (toy.predict_class(x) == y).float().mean().item()
        traces[name] = tr
    x = gk.sample(toy.denoiser(), diff, (60, 1, 4, 4), progress=False)
    unguided = (toy.predict_class(x) == y).float().mean().item()
    assert acc["constant"] > unguided + 0.3
    assert acc["entropy"] >= acc["constant"]
    s = traces["entropy"].tensor("scale")
    assert (s >= 1.0 - 1e-6).all() and s[-1].mean() > s[0].mean()  # EDS grows as p(y|x_t) sharpens
    summary = traces["constant"].summary()
    assert len(summary["t"]) == 25 and summary["mean_entropy"][0] > summary["mean_entropy"][-1]


def test_labels_are_validated(toy):
    g = gk.ClassifierGuidance(toy.classifier(), "constant")
    shape = (2, 1, 4, 4)
    with pytest.raises(gk.LabelError, match=r"out of range for the classifier with 5 classes: use 0..4"):
        gk.sample(toy.denoiser(), diffusion(), shape, guidance=g, y=torch.tensor([0, 7]), progress=False)
    with pytest.raises(gk.LabelError, match=r"shape \(2,\)"):
        gk.sample(toy.denoiser(), diffusion(), shape, guidance=g, y=torch.tensor([0]), progress=False)
    with pytest.raises(gk.LabelError, match="pass y="):
        gk.sample(toy.denoiser(), diffusion(), shape, guidance=g, progress=False)
    x, y = gk.sample(toy.denoiser(), diffusion(), shape, guidance=g, num_classes=5, progress=False, return_labels=True)
    assert y.shape == (2,) and int(y.max()) < 5


def test_non_finite_values_are_reported_with_step_and_sample(toy):
    def bad_model(x, t):
        out = torch.zeros_like(x)
        if int(t[0]) < 500:
            out[1] = float("nan")
        return out

    with pytest.raises(gk.NonFiniteError, match=r"step 5 \(t=400\) for samples \[1\]"):
        gk.sample(bad_model, diffusion(), (2, 1, 4, 4), progress=False)

    def bad_classifier(x, t):
        return toy.classifier()(x, t) * (float("inf") if int(t[0]) < 300 else 1.0)

    with pytest.raises(gk.NonFiniteError, match="classifier gradient at step 7"):
        gk.sample(toy.denoiser(), diffusion(), (2, 1, 4, 4), guidance=gk.ClassifierGuidance(bad_classifier, "constant"),
                  y=torch.tensor([0, 1]), progress=False)


def test_model_output_channels_must_match_learn_sigma(toy):
    diff = gk.GaussianDiffusion.create(respacing="ddim5", learn_sigma=True)
    with pytest.raises(gk.InvalidParameterError, match="must return 2 channels"):
        gk.sample(toy.denoiser(), diff, (1, 1, 4, 4), progress=False)


def test_progress_bar_can_be_shown_and_hidden(toy, capsys):
    from guidekit.progress import progress

    list(progress(range(3), desc="work", force=True))
    assert "work: 3/3" in capsys.readouterr().err
    list(progress(range(3), desc="work", force=True, disable=True))
    assert capsys.readouterr().err == ""


def test_diffusion_settings_are_validated():
    with pytest.raises(gk.InvalidParameterError, match="schedule"):
        gk.GaussianDiffusion.create(schedule="quadratic")
    with pytest.raises(gk.InvalidParameterError, match="section of 334 steps into 500"):
        gk.GaussianDiffusion.create(respacing="500,500,500")
    with pytest.raises(gk.InvalidParameterError, match="t_index out of range"):
        diffusion("ddim10").p_mean_variance(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 10)


@settings(max_examples=150, deadline=None)
@given(T=st.integers(2, 3000), n=st.integers(1, 60))
def test_respacing_keeps_counts_and_endpoints(T, n):
    n = min(n, T)
    kept = sorted(gk.space_timesteps(T, str(n)))
    assert len(kept) == n and kept[0] == 0 and all(0 <= k < T for k in kept)
    if n > 1:
        assert kept[-1] == T - 1
    try:
        ddim = sorted(gk.space_timesteps(T, f"ddim{n}"))
    except gk.InvalidParameterError:
        return
    assert len(ddim) == n and ddim[0] == 0 and ddim[-1] < T


@settings(max_examples=50, deadline=None)
@given(sections=st.lists(st.integers(0, 30), min_size=1, max_size=5))
def test_section_respacing_counts(sections):
    kept = gk.space_timesteps(1000, ",".join(map(str, sections)))
    assert len(kept) == sum(sections)
    diff = gk.GaussianDiffusion.create(respacing=",".join(map(str, sections))) if sum(sections) else None
    if diff is not None:
        assert diff.timestep_map.tolist() == sorted(kept)
        torch.testing.assert_close(diff.alphas_cumprod, gk.GaussianDiffusion.create().alphas_cumprod[diff.timestep_map])


class TestConstantContract(ScalerContract):
    def make_scaler(self):
        return gk.create("scaler", "constant", gamma=2.5)


class TestIntervalContract(ScalerContract):
    def make_scaler(self):
        return gk.create("scaler", "interval", gamma=2.5, outside=1.0)


class TestTimestepContract(ScalerContract):
    def make_scaler(self):
        return gk.create("scaler", "timestep", gamma=2.5)


class TestGradNormContract(ScalerContract):
    def make_scaler(self):
        return gk.create("scaler", "gradnorm", gamma=2.5)


def _state(t, grad_norm=None):
    b = len(t)
    grad = None if grad_norm is None else torch.tensor(grad_norm).view(-1, 1) * torch.eye(1, 4).expand(b, 4)
    return gk.GuidanceState(t=torch.tensor(t), t_index=0, num_steps=1, logits=torch.zeros(b, 3), grad=grad,
                            y=torch.zeros(b, dtype=torch.long))


def test_builtin_scaler_values():
    assert gk.create("scaler", "interval", gamma=3.0)(_state([0, 700, 701, 999])).tolist() == [3, 3, 0, 0]
    assert gk.create("scaler", "interval", gamma=3.0, outside=1.0)(_state([701])).tolist() == [1]
    assert gk.create("scaler", "timestep", gamma=2.0)(_state([0, 500, 1000])).tolist() == [2, 1, 0]
    gn = gk.create("scaler", "gradnorm", gamma=2.0, threshold=0.15, boost=10.0)
    assert gn(_state([5, 5], grad_norm=[0.1, 0.2])).tolist() == [20, 2]
    flipped = gk.create("scaler", "gradnorm", gamma=2.0, threshold=0.15, boost=10.0, flip=True)
    assert flipped(_state([5, 5], grad_norm=[0.1, 0.2])).tolist() == [2, 20]


def test_single_step_process_with_fixed_variance():
    """One kept step (steps=1, respacing "1") has no σ̃²_1 to borrow: FIXED_LARGE falls back to β."""
    for diff in (gk.GaussianDiffusion.create(steps=1, learn_sigma=False),
                 gk.GaussianDiffusion.create(learn_sigma=False, respacing="1")):
        x = torch.randn(2, 1, 4, 4)
        out = diff.p_mean_variance(torch.zeros_like(x), x, 0)
        torch.testing.assert_close(out.variance[:, 0, 0, 0], diff.betas.float().expand(2))
        step = DDPMSampler().step(diff, torch.zeros_like(x), x, 0, guidance_grad=torch.ones_like(x), noise=torch.randn_like(x))
        assert torch.isfinite(step.sample).all()


@pytest.mark.parametrize("steps", [2, 10, 20])
def test_linear_schedule_with_betas_of_one_or_more_is_refused(steps):
    """β_T = 0.02·1000/T reaches 1 for T <= 20: ᾱ would hit 0 or go negative (NaN or a garbage process)."""
    with pytest.raises(gk.InvalidParameterError, match="steps"):
        gk.GaussianDiffusion.create(steps=steps, respacing="ddim5" if steps >= 10 else "")
    assert torch.isfinite(gk.GaussianDiffusion.create(steps=21).sqrt_recip_alphas_cumprod).all()
    assert gk.GaussianDiffusion.create(steps=1).betas.tolist() == pytest.approx([0.1])
    assert torch.isfinite(gk.GaussianDiffusion.create(steps=10, schedule="cosine", respacing="ddim5").betas).all()


def test_guidance_state_broadcasts_plain_python_label():
    logits = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    state = gk.GuidanceState(t=500, t_index=0, num_steps=1, logits=logits, grad=None, y=2)
    torch.testing.assert_close(state.prob_of_label, torch.softmax(logits.double(), -1)[:, 2])


def test_guidance_state_entropy_with_masked_classes():
    """A class with logit −inf has p = 0 and contributes 0·log 0 = 0 to H, not NaN."""
    state = gk.GuidanceState(t=0, t_index=0, num_steps=1, logits=torch.tensor([[0.0, 0.0, -float("inf")]]), grad=None, y=[0])
    torch.testing.assert_close(state.entropy, torch.tensor([math.log(2)], dtype=torch.float64))


def test_diffusion_flags_must_be_booleans():
    for flag in ("learn_sigma", "predict_xstart", "sigma_small"):
        with pytest.raises(gk.InvalidParameterError, match=flag):
            gk.GaussianDiffusion.create(**{flag: "no"})


def test_classifier_without_autograd_graph_is_named():
    detached = gk.ClassifierGuidance(lambda x, t: torch.zeros(x.shape[0], 5), "constant")
    with pytest.raises(gk.InvalidParameterError, match="do not depend on x_t"):
        detached(torch.randn(2, 1, 4, 4), torch.tensor([5, 5]), torch.tensor([0, 1]))


def test_labels_are_range_checked_with_num_classes_for_a_plain_conditional_model(toy):
    def model(x, t, y=None):
        return torch.zeros_like(x)

    with pytest.raises(gk.LabelError, match="out of range for the model with 3 classes"):
        gk.sample(model, diffusion(), (2, 1, 4, 4), y=torch.tensor([0, 5]), num_classes=3, class_cond=True,
                  progress=False)


def test_builtins_are_listed_before_plugins():
    from guidekit.registry import default_registry

    dists = [d for d, _ in default_registry().manager.implementations("guidekit_scalers")]
    assert dists[0] == "guidekit" and "guidekit-eds" in dists[1:]
