"""FeatureStats: streaming (any chunking, merges) equals one-shot mean and np.cov."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from guidekit.errors import InvalidParameterError
from guidekit.metrics import FeatureStats


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 60),
    d=st.integers(1, 6),
    cuts=st.lists(st.integers(0, 60), max_size=8),
    seed=st.integers(0, 2**31 - 1),
    offset=st.sampled_from([0.0, 1e3, -5e5]),
)
def test_streaming_equals_one_shot_for_any_chunking(n, d, cuts, seed, offset):
    x = np.random.default_rng(seed).normal(size=(n, d)) + offset
    edges = sorted({0, n, *(c for c in cuts if c <= n)})
    stats = FeatureStats()
    for a, b in zip(edges[:-1], edges[1:]):
        stats.update(x[a:b])
    assert stats.count == n
    scale = max(1.0, abs(offset))
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False).reshape(d, d), rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(n1=st.integers(1, 30), n2=st.integers(1, 30), seed=st.integers(0, 2**31 - 1))
def test_merge_equals_one_shot(n1, n2, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n1, 4)), rng.normal(size=(n2, 4)) * 2 + 1
    merged = FeatureStats().update(a).merge(FeatureStats().update(b))
    both = np.concatenate([a, b])
    np.testing.assert_allclose(merged.mean, both.mean(0), atol=1e-12)
    np.testing.assert_allclose(merged.cov, np.cov(both, rowvar=False), rtol=1e-10, atol=1e-12)
    assert merged.count == n1 + n2


def test_torch_batches_and_float64_results():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    stats = FeatureStats(dim=3)
    for chunk in x.split(7):
        stats.update(chunk)
    assert stats.mean.dtype == np.float64 and stats.cov.shape == (3, 3)
    np.testing.assert_allclose(stats.cov, np.cov(x.double().numpy(), rowvar=False), rtol=1e-12)
    merged = FeatureStats().merge(stats)  # merging into an empty accumulator copies
    np.testing.assert_allclose(merged.mean, stats.mean)
    merged.merge(FeatureStats())  # merging an empty one changes nothing
    assert merged.count == 50


def test_errors_are_clear():
    with pytest.raises(InvalidParameterError, match="empty"):
        FeatureStats().mean
    with pytest.raises(InvalidParameterError, match="at least 2"):
        FeatureStats().update(np.zeros((1, 3))).cov
    stats = FeatureStats().update(np.zeros((2, 3)))
    with pytest.raises(InvalidParameterError, match="does not match"):
        stats.update(np.zeros((2, 4)))
    with pytest.raises(InvalidParameterError, match=r"shape \(B, D\)"):
        stats.update(np.zeros((2, 2, 2)))
    with pytest.raises(InvalidParameterError, match="NaN"):
        stats.update(np.full((2, 3), np.nan))
    with pytest.raises(InvalidParameterError, match="FeatureStats"):
        stats.merge(np.zeros(3))


def test_zero_width_features_are_rejected():
    """A 1-d empty array would otherwise become one 0-dimensional feature vector (dim 0, count 1)."""
    stats = FeatureStats()
    with pytest.raises(InvalidParameterError, match=r"D >= 1"):
        stats.update(np.zeros(0))
    assert stats.count == 0 and stats.dim is None
