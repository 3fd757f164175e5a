"""Fréchet distance: analytic values, agreement with a scipy.linalg.sqrtm implementation, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from guidekit.errors import InvalidParameterError
from guidekit.metrics import FrechetDistanceError, frechet_distance


def scipy_fd(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """The ADM evaluator's procedure, with scipy (test-only dependency)."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on singular input; the finiteness check handles it
        covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = np.real(covmean)
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def random_spd(rng: np.random.Generator, d: int, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(d, d + 4)) * scale
    return a @ a.T / (d + 4) + 1e-3 * np.eye(d)


def test_identical_gaussians_have_zero_distance():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=16), random_spd(rng, 16)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_gaussians_match_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = rng.uniform(0.1, 3.0, size=8), rng.uniform(0.1, 3.0, size=8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


def test_one_dimensional_and_torch_inputs():
    # N(0, 4) vs N(1, 1): 1 + 4 + 1 - 2·2 = 2
    assert frechet_distance(0.0, 4.0, 1.0, 1.0) == pytest.approx(2.0)
    value = frechet_distance(torch.zeros(3), torch.eye(3) * 4, torch.ones(3), torch.eye(3))
    assert isinstance(value, float) and value == pytest.approx(6.0)


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 24),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-2, 1.0, 30.0]),
)
def test_agrees_with_scipy_sqrtm_on_random_spd_matrices(d, seed, scale):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d) * scale, rng.normal(size=d) * scale
    s1, s2 = random_spd(rng, d, scale), random_spd(rng, d, scale)
    ours = frechet_distance(mu1, s1, mu2, s2)
    ref = scipy_fd(mu1, s1, mu2, s2)
    size = np.trace(s1) + np.trace(s2) + (mu1 - mu2) @ (mu1 - mu2)
    assert abs(ours - ref) <= 1e-8 * size + 1e-10


def test_singular_product_adds_eps_like_the_reference():
    rng = np.random.default_rng(3)
    d = 12
    feats1, feats2 = rng.normal(size=(5, d)), rng.normal(size=(6, d))  # fewer samples than dimensions
    mu1, mu2 = feats1.mean(0), feats2.mean(0)
    s1, s2 = np.cov(feats1, rowvar=False), np.cov(feats2, rowvar=False)
    with pytest.warns(RuntimeWarning, match="singular product"):
        ours = frechet_distance(mu1, s1, mu2, s2)
    offset = np.eye(d) * 1e-6
    covmean = np.real(scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset)))
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert np.isfinite(ours)
    assert ours == pytest.approx(expected, abs=1e-4)


def test_nonsingular_product_does_not_warn():
    rng = np.random.default_rng(4)
    s = random_spd(rng, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance(np.zeros(6), s, np.ones(6), s)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), "different lengths"),
        ((np.zeros(3), np.eye(4), np.zeros(3), np.eye(3)), r"sigma1 must have shape \(3, 3\)"),
        ((np.zeros(3), np.eye(3), np.zeros(3), np.ones((3, 2))), r"sigma2 must have shape \(3, 3\)"),
        ((np.zeros((2, 3)), np.eye(3), np.zeros(3), np.eye(3)), "mu1 must be a vector"),
        ((np.array([0.0, np.nan]), np.eye(2), np.zeros(2), np.eye(2)), "mu1 contains NaN"),
        ((np.zeros(0), np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0))), "empty"),
    ],
)
def test_shape_and_value_errors_are_clear(args, match):
    with pytest.raises(InvalidParameterError, match=match):
        frechet_distance(*args)


def test_non_psd_covariances_are_rejected():
    bad = np.diag([1.0, -1.0])
    with pytest.raises(FrechetDistanceError, match="not positive semi-definite"):
        frechet_distance(np.zeros(2), bad, np.zeros(2), np.eye(2))
    with pytest.raises(FrechetDistanceError, match="imaginary component"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), bad)
    with pytest.raises(InvalidParameterError, match="eps"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), eps=-1.0)
