"""Inception Score: limits, the reference's split procedure, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from guidekit.errors import InvalidParameterError
from guidekit.metrics import inception_score, inception_score_splits


def reference_is(preds: np.ndarray, split_size: int) -> float:
    """The ADM evaluator's loop (fixed-size consecutive splits, mean of exp(mean KL))."""
    scores = []
    for i in range(0, len(preds), split_size):
        part = preds[i : i + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_uniform_predictions_score_one():
    assert inception_score(np.full((100, 10), 0.1), splits=5) == pytest.approx(1.0)


def test_confident_diverse_predictions_approach_the_class_count():
    k = 10
    onehot = np.eye(k)[np.arange(1000) % k]
    assert inception_score(onehot, splits=10) == pytest.approx(k)
    soft = 0.99 * onehot + 0.01 / k
    assert 8.5 < inception_score(soft, splits=10) < k


def test_confident_single_class_scores_one():
    assert inception_score(np.eye(5)[np.zeros(50, int)], splits=2) == pytest.approx(1.0)


def test_matches_the_reference_split_procedure():
    rng = np.random.default_rng(0)
    preds = softmax(rng.normal(size=(500, 20)) * 3)
    assert inception_score(preds, splits=10) == pytest.approx(reference_is(preds, 50), rel=1e-12)
    # an uneven count: split_size reproduces the reference exactly (last split shorter)
    assert inception_score(preds[:473], split_size=50) == pytest.approx(reference_is(preds[:473], 50), rel=1e-12)


def test_per_split_values_and_torch_input():
    rng = np.random.default_rng(1)
    preds = softmax(rng.normal(size=(90, 7)))
    per_split = inception_score_splits(torch.from_numpy(preds).float(), splits=3)
    assert per_split.shape == (3,) and per_split.dtype == np.float64
    assert inception_score(preds, splits=3) == pytest.approx(per_split.mean(), rel=1e-6)


@pytest.mark.parametrize(
    ("probs", "kwargs", "match"),
    [
        (np.full((4, 2), 0.5), {"splits": 5}, "larger than the number of samples"),
        (np.full((4, 2), 0.5), {"splits": 0}, "positive integer"),
        (np.full((4, 2), 0.6), {"splits": 1}, "sum to 1"),
        (np.array([[1.5, -0.5]]), {"splits": 1}, "negative"),
        (np.full(4, 0.25), {"splits": 1}, r"shape \(N, K\)"),
        (np.array([[np.nan, 1.0]]), {"splits": 1}, "NaN"),
        (np.full((4, 2), 0.5), {"split_size": 0}, "split_size"),
    ],
)
def test_invalid_inputs_raise(probs, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        inception_score(probs, **kwargs)
