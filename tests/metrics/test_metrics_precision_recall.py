"""Precision/recall (Kynkäänniemi et al.): limits, radii semantics, blockwise == brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from guidekit.errors import InvalidParameterError
from guidekit.metrics import manifold_radii, precision_recall


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Full distance matrices; radius = index k of each sorted row, self included."""

    def sq(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    r_real = np.sort(sq(real, real), axis=1)[:, k]
    r_fake = np.sort(sq(fake, fake), axis=1)[:, k]
    d = sq(fake, real)
    precision = float(np.mean((d <= r_real[None, :]).any(axis=1)))
    recall = float(np.mean((d <= r_fake[:, None]).any(axis=0)))
    return precision, recall, r_real, r_fake


def test_identical_sets_have_precision_and_recall_one():
    x = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    assert precision_recall(x, x.copy(), k=3) == (1.0, 1.0)


def test_disjoint_far_sets_have_precision_and_recall_zero():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(100, 8))
    fake = rng.normal(size=(120, 8)) + 1000.0
    assert precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_subset_has_full_precision_but_partial_recall():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 2)) * 3
    fake = real[np.linalg.norm(real, axis=1) < 1.5]  # one small region of the real support
    precision, recall = precision_recall(real, fake, k=3)
    assert precision == 1.0
    assert recall < 0.5


def test_radius_counts_self_as_the_zeroth_neighbour():
    points = torch.tensor([[0.0], [1.0], [3.0]])
    # sorted squared distances per row, self first: [0,1,9], [0,1,4], [0,4,9]
    assert manifold_radii(points, k=1).tolist() == [1.0, 1.0, 4.0]
    assert manifold_radii(points, k=2).tolist() == [9.0, 4.0, 9.0]


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(4, 70),
    m=st.integers(4, 70),
    d=st.integers(1, 6),
    k=st.integers(1, 3),
    block=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
)
def test_blockwise_equals_brute_force(n, m, d, k, block, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d))
    fake = rng.normal(size=(m, d)) * 1.3 + 0.4
    p_ref, r_ref, radii_real, _ = brute_force(real, fake, k)
    got = precision_recall(real, fake, k=k, block_size=block, dtype=torch.float64)
    assert got == (pytest.approx(p_ref, abs=1e-12), pytest.approx(r_ref, abs=1e-12))
    radii = manifold_radii(real, k=k, block_size=block, dtype=torch.float64).numpy()
    np.testing.assert_allclose(radii, radii_real, rtol=1e-9, atol=1e-12)


def test_torch_float32_inputs_and_default_blocks():
    rng = np.random.default_rng(4)
    real = torch.from_numpy(rng.normal(size=(300, 5)).astype(np.float32))
    fake = torch.from_numpy(rng.normal(size=(250, 5)).astype(np.float32) + 0.5)
    p_ref, r_ref, _, _ = brute_force(real.double().numpy(), fake.double().numpy(), 3)
    precision, recall = precision_recall(real, fake, k=3, block_size=64)
    assert precision == pytest.approx(p_ref, abs=2 / 250)
    assert recall == pytest.approx(r_ref, abs=2 / 300)


@pytest.mark.parametrize(
    ("real", "fake", "kwargs", "match"),
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), {}, "different dimensions"),
        (np.zeros((3, 2)), np.zeros((5, 2)), {"k": 3}, "at least 4 points"),
        (np.zeros((5, 2)), np.zeros((5, 2)), {"k": 0}, "positive integer"),
        (np.zeros(5), np.zeros((5, 2)), {}, r"shape \(N, D\)"),
        (np.full((5, 2), np.inf), np.zeros((5, 2)), {}, "NaN or inf"),
        (np.zeros((5, 2)), np.zeros((5, 2)), {"block_size": 0}, "block_size"),
    ],
)
def test_invalid_inputs_raise(real, fake, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        precision_recall(real, fake, **kwargs)
