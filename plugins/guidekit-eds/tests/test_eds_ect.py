"""EDS and ECT against golden/eds_ect.pt, plus the properties of paper Eq. 10-12."""

from __future__ import annotations

import math

import pytest
import torch
from guidekit_eds import EntropyConstraintLoss, EntropyScaler
from hypothesis import given, settings
from hypothesis import strategies as st

import guidekit as gk
from guidekit.testing import load_golden
from guidekit.testing.contracts import LossContract, ScalerContract
from guidekit.testing.strategies import logits as logits_strategy


@pytest.fixture(scope="module")
def g():
    return load_golden("eds_ect.pt")


def _state(logits: torch.Tensor) -> gk.GuidanceState:
    b = logits.shape[0]
    return gk.GuidanceState(t=torch.zeros(b, dtype=torch.long), t_index=0, num_steps=1, logits=logits, grad=None,
                            y=torch.zeros(b, dtype=torch.long))


WELL_CONDITIONED = [0, 3, 4, 5]


@pytest.mark.parametrize("K", [10, 1000])
def test_entropy_matches_reference(g, K):
    state = _state(g[f"K{K}/logits"])
    torch.testing.assert_close(state.entropy, g[f"K{K}/entropy_f64"].double(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("K", [10, 1000])
def test_eds_factor_matches_reference_code_and_paper(g, K):
    logits = g[f"K{K}/logits"]
    code = EntropyScaler(normalizer="ed-dpm").factor(logits)
    paper = EntropyScaler().factor(logits)
    rows = WELL_CONDITIONED
    torch.testing.assert_close(code[rows].float(), g[f"K{K}/eds_factor_code"][rows], rtol=1e-5, atol=0)
    torch.testing.assert_close(paper[rows].float(), g[f"K{K}/eds_factor_logK"][rows], rtol=1e-5, atol=0)
    # rows 1-2 are nearly one-hot: float32 reference vs float64 differ by ~2 %
    torch.testing.assert_close(code[[1, 2]].float(), g[f"K{K}/eds_factor_code"][[1, 2]], rtol=5e-2, atol=0)
    assert code[1] > 1e12
    # uniform row: the paper's factor is exactly 1, the code's is log(1000)/log(K)
    assert paper[0].item() == pytest.approx(1.0, rel=1e-12)
    assert code[0].item() == pytest.approx(math.log(1000) / math.log(K), rel=1e-6)


@pytest.mark.parametrize("K", [10, 1000])
@pytest.mark.parametrize("w", [0.1, 1.0])
def test_ect_loss_and_gradient_match_reference(g, K, w):
    logits, y = g[f"K{K}/logits"], g[f"K{K}/labels"]
    p = f"K{K}/w{w}"
    code = EntropyConstraintLoss(eta=w, normalizer="ed-dpm", reduction="none")(logits, y)
    torch.testing.assert_close(code, g[f"{p}/loss_per_sample_code"], rtol=1e-5, atol=1e-6)
    paper = EntropyConstraintLoss(eta=w, reduction="none")(logits, y)
    torch.testing.assert_close(paper, g[f"{p}/loss_per_sample_logK"], rtol=1e-5, atol=1e-6)
    lg = logits.clone().requires_grad_(True)
    mean = EntropyConstraintLoss(eta=w, normalizer="ed-dpm")(lg, y)
    torch.testing.assert_close(mean.detach(), g[f"{p}/loss_mean_code"], rtol=1e-5, atol=1e-6)
    (grad,) = torch.autograd.grad(mean, lg)
    torch.testing.assert_close(grad, g[f"{p}/dloss_mean_dlogits"], rtol=1e-4, atol=1e-7)
    ce = gk.create("loss", "ce", reduction="none")(logits, y)
    torch.testing.assert_close(ce, g[f"{p}/ce"], rtol=1e-5, atol=1e-6)


def test_ect_uses_full_batch_logits_not_index_zero(g):
    """ED-DPM's training scripts index [0] into (B, K) logits (notes §3.3); ours refuse 1-D logits."""
    assert g["ed_index0_cross_entropy_error"].startswith("ValueError")
    logits, y = g["K10/logits"], g["K10/labels"]
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        EntropyConstraintLoss()(logits[0], y)


def test_registered_through_entry_point():
    assert "entropy" in gk.available("scaler")
    assert "ect" in gk.available("loss")
    comps = {c.name: c.provider for c in gk.describe("scaler")}
    assert comps["entropy"] == "guidekit-eds"
    assert gk.create("loss", "ect").eta == 0.2


def test_bad_parameters_are_named():
    with pytest.raises(gk.InvalidParameterError, match="normalizer"):
        gk.create("scaler", "entropy", normalizer="log2")
    with pytest.raises(gk.InvalidParameterError, match="did you mean 'gamma'"):
        gk.create("scaler", "entropy", gama=2.0)
    with pytest.raises(gk.InvalidParameterError, match="max_scale"):
        gk.create("scaler", "entropy", max_scale=-1.0)


# -- properties (paper Eq. 10) ---------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(k=st.integers(2, 2000), b=st.integers(1, 4), gamma=st.floats(0.0, 50.0), c=st.floats(-1e3, 1e3))
def test_scale_is_gamma_at_uniform_predictions(k, b, gamma, c):
    s = EntropyScaler(gamma=gamma)(_state(torch.full((b, k), c, dtype=torch.float64)))
    torch.testing.assert_close(s, torch.full((b,), gamma, dtype=torch.float64), rtol=1e-9, atol=1e-12)


@settings(max_examples=300, deadline=None)
@given(logits=logits_strategy(), gamma=st.floats(0.0, 50.0))
def test_scale_at_least_gamma_and_finite(logits, gamma):
    for dtype in (torch.float64, torch.float32):
        s = EntropyScaler(gamma=gamma)(_state(logits.to(dtype)))
        assert torch.isfinite(s).all()
        assert (s >= gamma).all()


@settings(max_examples=200, deadline=None)
@given(logits=logits_strategy(magnitude=30.0), shift=st.floats(-100.0, 100.0), gamma=st.floats(0.1, 20.0))
def test_scale_invariant_to_logit_shift(logits, shift, gamma):
    scaler = EntropyScaler(gamma=gamma, max_scale=1e6)
    torch.testing.assert_close(scaler(_state(logits + shift)), scaler(_state(logits)), rtol=1e-6, atol=0)


@settings(max_examples=100, deadline=None)
@given(b=st.integers(1, 4), k=st.integers(2, 1000), big=st.floats(50.0, 1e30), compat=st.booleans())
def test_one_hot_never_inf_or_nan(b, k, big, compat):
    logits = torch.zeros(b, k)
    logits[:, 0] = big
    scaler = EntropyScaler(gamma=1.0, normalizer="ed-dpm" if compat else "log-k")
    s = scaler(_state(logits))
    assert torch.isfinite(s).all() and (s > 1.0).all()
    assert (EntropyScaler(gamma=2.0, max_scale=50.0)(_state(logits)) <= 50.0).all()


@settings(max_examples=200, deadline=None)
@given(logits=logits_strategy(), eta=st.floats(0.0, 5.0), data=st.data())
def test_ect_at_least_ce(logits, eta, data):
    y = torch.tensor(data.draw(st.lists(st.integers(0, logits.shape[1] - 1), min_size=len(logits), max_size=len(logits))))
    ect = EntropyConstraintLoss(eta=eta, reduction="none")(logits, y)
    ce = gk.create("loss", "ce", reduction="none")(logits, y)
    assert (ect >= ce - 1e-9).all()


class TestEntropyScalerContract(ScalerContract):
    def make_scaler(self):
        return EntropyScaler(gamma=3.0)


class TestEntropyScalerCompatContract(ScalerContract):
    def make_scaler(self):
        return EntropyScaler(gamma=3.0, normalizer="ed-dpm")


class TestEctContract(LossContract):
    def make_loss(self):
        return EntropyConstraintLoss()


def test_compat_alias_and_plain_python_state(g):
    logits = g["K10/logits"]
    a = gk.create("scaler", "entropy", gamma=2.0, compat="ed-dpm")
    b = gk.create("scaler", "entropy", gamma=2.0, normalizer="ed-dpm")
    state = gk.GuidanceState(t=500, t_index=3, num_steps=25, logits=logits, grad=None, y=[0] * 6)
    torch.testing.assert_close(a(state), b(state))
    assert a(state).shape == (6,)
    assert gk.create("scaler", "interval")(state).shape == (6,)
    loss = gk.create("loss", "ect", eta=0.1, compat="ed-dpm", reduction="none")
    torch.testing.assert_close(loss(logits, g["K10/labels"]), g["K10/w0.1/loss_per_sample_code"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("compat", [False, True])
def test_one_hot_and_masked_logits_in_every_dtype(dtype, compat):
    """Half-precision one-hot logits, and masked (−inf) classes, still give a finite scale ≥ γ."""
    scaler = EntropyScaler(gamma=2.0, normalizer="ed-dpm" if compat else "log-k")
    big = torch.zeros(2, 10, dtype=dtype)
    big[:, 0] = 1e4
    masked = torch.tensor([[3.0, 0.0, -float("inf")], [0.0, -float("inf"), -float("inf")]], dtype=dtype)
    for logits in (big, masked):
        s = scaler(_state(logits))
        assert torch.isfinite(s).all() and (s >= 2.0).all(), (logits, s)
    if not compat:  # log K = log 3; the second row is one-hot
        full = EntropyScaler(gamma=2.0)(_state(torch.tensor([[3.0, 0.0, -30.0]], dtype=torch.float64)))
        torch.testing.assert_close(scaler(_state(masked))[0].double(), full[0], rtol=1e-3, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_ect_with_masked_or_saturated_logits_is_finite(dtype):
    logits = torch.tensor([[0.0, -float("inf"), -float("inf")], [60000.0, -60000.0, 0.0], [1.0, 0.0, -float("inf")]],
                          dtype=dtype).requires_grad_(True)
    y = torch.tensor([0, 0, 1])
    ect = EntropyConstraintLoss(eta=0.2, reduction="none")(logits, y)
    ce = gk.create("loss", "ce", reduction="none")(logits, y)
    assert torch.isfinite(ect).all() and (ect >= ce - 1e-3).all(), ect
    (grad,) = torch.autograd.grad(ect.sum(), logits)
    assert torch.isfinite(grad).all(), grad
