"""Guidance components: classifier, classifier-free (CFG, φ-rescale, APG) and x̂0-classifier guidance."""

from __future__ import annotations

import pytest
import torch

import guidekit as gk
from guidekit.guidance import AdaptiveProjectedGuidance, ClassifierFreeGuidance, RescaledCFG, StepContext
from guidekit.testing.contracts import GuidanceContract
from guidekit.toy import GaussianMixtureToy
from guidekit.trace import GuidanceTrace

adm = pytest.importorskip("guidekit_adm")  # the tiny random-weight ADM UNets below

K = 4  # real classes; label K is the null label
SHAPE = (3, 1, 8, 8)


class TinyConvModel(torch.nn.Module):
    """A small smooth float64 ε-model(x_t, t, y) for finite differences (the ADM UNet runs its time embedding in float32)."""

    num_classes = K + 1

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(5)
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1).double()
        self.conv2 = torch.nn.Conv2d(8, 1, 3, padding=1).double()
        self.label = torch.nn.Embedding(K + 1, 8).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)

    def forward(self, x, t, y):
        h = torch.tanh(self.conv1(x) * (1 + t.double().view(-1, 1, 1, 1) / 1000) + self.label(y)[:, :, None, None])
        return self.conv2(h)


def tiny_unet(learn_sigma: bool = True, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A class-conditional ADM UNet with K + 1 labels (the last is the null label) and random weights everywhere."""
    torch.manual_seed(0)
    model = adm.UNetModel(image_size=8, in_channels=1, model_channels=32, out_channels=2 if learn_sigma else 1,
                          num_res_blocks=1, attention_resolutions=(2,), channel_mult=(1, 1), num_classes=K + 1,
                          num_head_channels=8, use_scale_shift_norm=True)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():  # ADM zero-initialises output layers; make every layer matter
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    model = model.to(dtype).eval()
    model.dtype = dtype
    model.card = {"null_label": K}
    return model


def diffusion(learn_sigma: bool = True, respacing: str = "ddim4") -> gk.GaussianDiffusion:
    return gk.GaussianDiffusion.create(steps=1000, learn_sigma=learn_sigma, respacing=respacing)


Y = torch.tensor([0, 1, 3])


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    return tiny_unet()


@pytest.fixture(scope="module")
def toy() -> GaussianMixtureToy:
    return GaussianMixtureToy(num_classes=5, shape=(1, 4, 4), std=0.5, separation=0.3)


def cfg_sample(model, guidance, y=Y, respacing="ddim4", **kw):
    return gk.sample(model, diffusion(respacing=respacing), SHAPE, guidance=guidance, y=y, seed=5, progress=False, **kw)


def test_guidances_are_registered():
    assert {"classifier", "classifier-free", "x0-classifier", "cfg-rescale", "apg"} <= set(gk.available("guidance"))
    assert [c.provider for c in gk.describe("guidance")] == ["guidekit"] * len(gk.available("guidance"))


def test_created_classifier_guidance_gives_the_same_samples(toy):
    clf = toy.classifier()
    diff = diffusion(learn_sigma=False, respacing="ddim10")
    y = torch.tensor([0, 1, 2, 3])
    kw = dict(y=y, seed=3, progress=False)
    a = gk.sample(toy.denoiser(), diff, (4, 1, 4, 4), guidance=gk.create("guidance", "classifier", classifier=clf,
                                                                       scaler="entropy", gamma=2.0), **kw)
    b = gk.sample(toy.denoiser(), diff, (4, 1, 4, 4), guidance=gk.ClassifierGuidance(clf, "entropy", gamma=2.0), **kw)
    unguided = gk.sample(toy.denoiser(), diff, (4, 1, 4, 4), **kw)
    assert torch.equal(a, b) and not torch.allclose(a, unguided)


def test_a_plain_guidance_callable_still_works(toy):
    """Research code that passes a callable (x_t, t, y, t_index=, ...) -> GuidanceResult keeps working."""
    g = gk.ClassifierGuidance(toy.classifier(), "constant", gamma=2.0)
    diff = diffusion(learn_sigma=False, respacing="ddim5")
    kw = dict(y=torch.tensor([0, 3]), seed=1, progress=False)
    as_callable = gk.sample(toy.denoiser(), diff, (2, 1, 4, 4), guidance=lambda *a, **k: g(*a, **k), **kw)
    torch.testing.assert_close(as_callable, gk.sample(toy.denoiser(), diff, (2, 1, 4, 4), guidance=g, **kw),
                               rtol=0, atol=0)
    with pytest.raises(gk.InvalidParameterError, match="guide"):
        gk.sample(toy.denoiser(), diff, (2, 1, 4, 4), guidance="classifier-free", **kw)


@pytest.mark.parametrize("options", [dict(), dict(skip_unused=False, batched=False)])
def test_cfg_w1_is_conditional_and_w0_is_the_null_label(unet, options):
    conditional = cfg_sample(unet, None)
    null = cfg_sample(unet, None, y=torch.full((3,), K))
    w1 = cfg_sample(unet, gk.create("guidance", "classifier-free", scaler="constant", gamma=1.0, **options))
    w0 = cfg_sample(unet, gk.create("guidance", "classifier-free", scaler="constant", gamma=0.0, **options))
    torch.testing.assert_close(w1, conditional, rtol=0, atol=1e-6)
    torch.testing.assert_close(w0, null, rtol=0, atol=1e-6)
    w3 = cfg_sample(unet, gk.create("guidance", "classifier-free", scaler="constant", gamma=3.0, **options))
    assert (w3 - conditional).abs().max() > 1e-2  # guidance does something


def test_cfg_guided_output_formula_and_learned_sigma(unet):
    diff = diffusion()
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    t = torch.full((3,), 500)
    ctx = StepContext(diff, 0, 2, diff.num_steps, 1000, True)
    out = gk.create("guidance", "classifier-free", gamma=3.0).guide(unet, x, t, Y, ctx)
    with torch.no_grad():
        cond, uncond = unet(x, t, y=Y), unet(x, t, y=torch.full((3,), K))
    torch.testing.assert_close(out.model_output[:, :1], uncond[:, :1] + 3 * (cond[:, :1] - uncond[:, :1]),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.model_output[:, 1:], cond[:, 1:], rtol=1e-5, atol=1e-6)  # conditional variance
    assert out.grad is None and out.result.scale.tolist() == [3.0] * 3 and out.result.state.neutral == 1.0


def test_cfg_batched_and_two_forwards_agree(unet):
    """One forward of 2B and two of B round differently in the convolutions: a step agrees to 1e-5,
    four sampling steps (which amplify ε errors by up to 1/√ᾱ) to 1e-4."""
    diff = diffusion()
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    for i in range(diff.num_steps):
        t, ctx = diff.original_timestep(torch.full((3,), i)), StepContext(diff, 0, i, diff.num_steps, 1000, True)
        for w in (0.0, 1.0, 2.5):
            one = ClassifierFreeGuidance("constant", gamma=w, batched=True, skip_unused=False).guide(unet, x, t, Y, ctx)
            two = ClassifierFreeGuidance("constant", gamma=w, batched=False, skip_unused=False).guide(unet, x, t, Y, ctx)
            torch.testing.assert_close(one.model_output, two.model_output, rtol=1e-5, atol=1e-5)
    one = cfg_sample(unet, ClassifierFreeGuidance("constant", gamma=2.5, batched=True))
    two = cfg_sample(unet, ClassifierFreeGuidance("constant", gamma=2.5, batched=False))
    torch.testing.assert_close(one, two, rtol=0, atol=1e-4)


class CountingModel(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.batches = inner, []
        self.num_classes, self.card = inner.num_classes, inner.card

    def forward(self, x, t, y=None):
        self.batches.append((int(t[0]), len(x)))
        return self.inner(x, t, y=y)


def test_interval_gives_w1_outside_its_range(unet):
    trace = GuidanceTrace()
    g = gk.create("guidance", "classifier-free", scaler="interval", gamma=4.0, start=200, end=600)
    model = CountingModel(unet)
    guided = cfg_sample(model, g, respacing="ddim10", callback=trace)
    w = dict(zip(trace.t, trace.tensor("scale")[:, 0].tolist()))
    assert w == {t: 4.0 if 200 <= t <= 600 else 1.0 for t in range(900, -1, -100)}
    assert model.batches == [(t, 6 if 200 <= t <= 600 else 3) for t in range(900, -1, -100)]  # w = 1: one forward of B
    # outside the interval the steps equal conditional sampling: a zero-width interval at t = 0 changes nothing else
    none_inside = cfg_sample(unet, gk.create("guidance", "classifier-free", scaler="interval", gamma=4.0, start=1,
                                             end=1), respacing="ddim10")
    torch.testing.assert_close(none_inside, cfg_sample(unet, None, respacing="ddim10"), rtol=0, atol=0)
    assert not torch.allclose(guided, none_inside)
    # classifier guidance keeps its meaning: 0 outside
    state = gk.GuidanceState(t=torch.tensor([900]), t_index=0, num_steps=1, logits=torch.zeros(1, 3), grad=None,
                             y=torch.tensor([0]))
    assert gk.create("scaler", "interval", gamma=4.0)(state).tolist() == [0.0]


def test_scalers_needing_a_classifier_fail_under_cfg_naming_both(unet):
    for scaler in ("entropy", "gradnorm"):
        g = gk.create("guidance", "classifier-free", scaler=scaler, gamma=2.0)
        with pytest.raises(gk.MissingGuidanceFieldError, match=rf"(?s)scaler .*{scaler[:4]}.*'classifier-free'"):
            cfg_sample(unet, g)


def test_cfg_needs_a_null_label_and_a_conditional_model(toy, unet):
    bare = tiny_unet()
    del bare.card
    with pytest.raises(gk.InvalidParameterError, match="null_label"):
        cfg_sample(bare, gk.create("guidance", "classifier-free", gamma=2.0))
    torch.testing.assert_close(cfg_sample(bare, gk.create("guidance", "classifier-free", gamma=2.0, null_label=K)),
                               cfg_sample(unet, gk.create("guidance", "classifier-free", gamma=2.0)), rtol=0, atol=0)
    with pytest.raises(gk.InvalidParameterError, match="class-conditional"):
        gk.sample(toy.denoiser(), diffusion(learn_sigma=False), (2, 1, 4, 4), guidance=ClassifierFreeGuidance(null_label=5),
                  y=torch.tensor([0, 1]), progress=False)
    # labels drawn when not given never hit the null label
    _, y = gk.sample(unet, diffusion(respacing="ddim2"), (40, 1, 8, 8),
                     guidance=gk.create("guidance", "classifier-free"), progress=False, return_labels=True)
    assert int(y.max()) < K and len(set(y.tolist())) == K


def test_rescale_phi0_and_apg_plain_settings_equal_cfg(unet):
    cfg = cfg_sample(unet, ClassifierFreeGuidance("constant", gamma=3.0))
    torch.testing.assert_close(cfg_sample(unet, RescaledCFG("constant", gamma=3.0, phi=0.0)), cfg, rtol=0, atol=1e-5)
    torch.testing.assert_close(cfg_sample(unet, AdaptiveProjectedGuidance("constant", gamma=3.0, eta=1.0)), cfg,
                               rtol=0, atol=1e-5)
    rescaled = cfg_sample(unet, RescaledCFG("constant", gamma=3.0, phi=0.7))
    apg = cfg_sample(unet, AdaptiveProjectedGuidance("constant", gamma=3.0, eta=0.0, norm_threshold=5.0, momentum=-0.5))
    assert not torch.allclose(rescaled, cfg) and not torch.allclose(apg, cfg)


def test_rescale_matches_the_conditional_std(unet):
    diff = diffusion()
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    t = torch.full((3,), 300)
    ctx = StepContext(diff, 0, 1, diff.num_steps, 1000, True)
    out = RescaledCFG("constant", gamma=5.0, phi=1.0).guide(unet, x, t, Y, ctx).model_output[:, :1]
    idx = ctx.index_tensor(x)
    with torch.no_grad():
        cond = unet(x, t, y=Y)[:, :1]
    std = lambda eps: diff.predict_xstart_from_eps(x, idx, eps).flatten(1).std(1)  # noqa: E731
    torch.testing.assert_close(std(out), std(cond), rtol=1e-4, atol=1e-5)


def test_apg_drops_the_parallel_component(unet):
    diff = diffusion()
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    t = torch.full((3,), 300)
    ctx = StepContext(diff, 0, 1, diff.num_steps, 1000, True)
    idx = ctx.index_tensor(x)
    out = AdaptiveProjectedGuidance("constant", gamma=3.0, eta=0.0).guide(unet, x, t, Y, ctx).model_output[:, :1]
    with torch.no_grad():
        x0_c = diff.predict_xstart_from_eps(x, idx, unet(x, t, y=Y)[:, :1])
    update = diff.predict_xstart_from_eps(x, idx, out) - x0_c
    cos = torch.nn.functional.cosine_similarity(update.flatten(1).double(), x0_c.flatten(1).double(), dim=1)
    assert cos.abs().max() < 1e-4 and update.abs().max() > 1e-2


def test_x0_classifier_gradient_matches_finite_differences():
    model = TinyConvModel()
    gen = torch.Generator().manual_seed(3)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, K)).double()
    with torch.no_grad():
        for p in clf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
    diff = diffusion(learn_sigma=False)
    x = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
    t_index = 2
    t = diff.original_timestep(torch.full((3,), t_index))
    ctx = StepContext(diff, 1, t_index, diff.num_steps, 1000, True)
    g = gk.create("guidance", "x0-classifier", classifier=clf, scaler="constant", gamma=2.0)
    out = g.guide(model, x, t, Y, ctx)

    def log_p(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x0 = diff.predict_xstart_from_eps(z, ctx.index_tensor(z), model(z, t, y=Y)[:, :1])
            return torch.log_softmax(clf(x0), -1)[torch.arange(3), Y]

    h = 1e-6
    for b, i, j in [(0, 3, 4), (1, 0, 7), (2, 5, 2)]:
        d = torch.zeros_like(x)
        d[b, 0, i, j] = h
        fd = (log_p(x + d) - log_p(x - d))[b] / (2 * h)
        assert out.grad[b, 0, i, j].item() == pytest.approx(2.0 * fd.item(), rel=1e-5, abs=1e-9)
    assert out.result.state.provides("logits") and out.result.scale.tolist() == [2.0] * 3
    with torch.no_grad():
        torch.testing.assert_close(out.model_output, model(x, t, y=Y))


def test_x0_classifier_guidance_steers_the_toy(toy):
    """A clean classifier (the toy's at t = 0) through x̂0 pulls samples towards their labels."""
    y = torch.arange(40) % 5
    diff = diffusion(learn_sigma=False, respacing="ddim25")
    kw = dict(y=y, seed=0, progress=False)
    unguided = gk.sample(toy.denoiser(), diff, (40, 1, 4, 4), **kw)
    trace = GuidanceTrace()
    g = gk.create("guidance", "x0-classifier", classifier=toy.classifier(), timestep=0, scaler="entropy", gamma=0.5)
    guided = gk.sample(toy.denoiser(), diff, (40, 1, 4, 4), guidance=g, callback=trace, **kw)
    acc = lambda x: (toy.predict_class(x) == y).float().mean().item()  # noqa: E731
    assert acc(guided) > acc(unguided) + 0.3
    assert trace.has("entropy") and trace.has("guided_norm")


def test_timestep_schedules_of_wang_et_al():
    t = torch.tensor([0, 250, 500, 750, 999])
    state = lambda neutral: gk.GuidanceState(t=t, t_index=0, num_steps=1, logits=None, grad=None,  # noqa: E731
                                             y=torch.zeros(5, dtype=torch.long), neutral=neutral, guidance="x")
    lin = gk.create("scaler", "timestep", gamma=3.0, schedule="linear")
    torch.testing.assert_close(lin(state(0.0)), 6.0 * (1 - t / 1000).float())
    torch.testing.assert_close(lin(state(1.0)), (1 + 4.0 * (1 - t / 1000)).float())  # CFG: around w = 1
    cos_dec = gk.create("scaler", "timestep", gamma=3.0, schedule="cosine", direction="decreasing")
    torch.testing.assert_close(cos_dec(state(0.0)), (3.0 * (1 - torch.cos(torch.pi * t / 1000))).float())
    grid = gk.GuidanceState(t=torch.arange(1000), t_index=0, num_steps=1, logits=None, grad=None,
                            y=torch.zeros(1000, dtype=torch.long), neutral=1.0, guidance="x")
    for schedule in ("linear", "cosine"):
        for direction in ("increasing", "decreasing"):
            w = gk.create("scaler", "timestep", gamma=3.0, schedule=schedule, direction=direction)(grid)
            assert w.mean().item() == pytest.approx(3.0, abs=0.01)  # same total guidance as constant w = 3
            assert (w[0] > w[-1]) == (direction == "increasing")
    with pytest.raises(gk.InvalidParameterError):
        gk.create("scaler", "timestep", schedule="sigmoid")


def test_cfg_trace_records_the_scale_and_plots(unet, tmp_path):
    trace = GuidanceTrace()
    cfg_sample(unet, gk.create("guidance", "classifier-free", scaler="timestep", gamma=3.0, schedule="cosine"),
               callback=trace)
    assert trace.has("scale") and not trace.has("entropy") and not trace.has("guided_norm")
    summary = trace.summary()
    assert summary["mean_entropy"] == [None] * 4 and summary["t_confident"] is None
    assert summary["mean_scale"][0] < summary["mean_scale"][-1]
    trace.to_json(tmp_path / "trace.json")
    pytest.importorskip("matplotlib")
    trace.plot(tmp_path / "trace.png")
    assert (tmp_path / "trace.png").stat().st_size > 0


class TestClassifierGuidanceContract(GuidanceContract):
    def make_guidance(self):
        return gk.create("guidance", "classifier", classifier=self.toy.classifier(), scaler="entropy", gamma=1.0)


class TestClassifierFreeContract(GuidanceContract):
    def make_guidance(self):
        return gk.create("guidance", "classifier-free", scaler="interval", gamma=3.0, start=0, end=500)


class TestRescaleContract(GuidanceContract):
    def make_guidance(self):
        return gk.create("guidance", "cfg-rescale", gamma=4.0, phi=0.7)


class TestAPGContract(GuidanceContract):
    def make_guidance(self):
        return gk.create("guidance", "apg", gamma=4.0, eta=0.0, norm_threshold=2.0, momentum=-0.5)


class TestX0ClassifierContract(GuidanceContract):
    def make_guidance(self):
        return gk.create("guidance", "x0-classifier", classifier=self.toy.classifier(), timestep=0, gamma=1.0)


def test_x0_classifier_guides_with_an_extractor_such_as_the_bundled_oracle():
    """Issue 10's example: x0-classifier with mnist16-oracle, whose forward returns a feature dict."""
    unet, oracle = gk.create("network", "mnist16-unet"), gk.create("network", "mnist16-oracle")
    diff = gk.GaussianDiffusion.create(**unet.card["diffusion"], respacing="ddim5")
    y = torch.arange(4)
    plain = gk.sample(unet, diff, (4, 1, 16, 16), y=y, seed=0, progress=False, class_cond=False)
    guided = gk.sample(unet, diff, (4, 1, 16, 16), seed=0, progress=False, y=y,
                       guidance=gk.create("guidance", "x0-classifier", classifier=oracle, scaler="constant", gamma=2.0))
    assert torch.isfinite(guided).all() and not torch.equal(guided, plain)
