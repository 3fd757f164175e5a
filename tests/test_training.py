"""Noise-aware classifier training (Algorithm 2) with CE and ECT on the Gaussian-mixture toy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import guidekit as gk
from guidekit.toy import GaussianMixtureToy
from guidekit.training import TrainConfig, train_classifier


class TinyClassifier(nn.Module):
    """An MLP on (x_t, t/T)."""

    def __init__(self, pixels: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(pixels + 1, 64), nn.SiLU(), nn.Linear(64, classes))

    def forward(self, x, t):
        return self.net(torch.cat([x.flatten(1), t.float().view(-1, 1) / 1000], 1))


@pytest.fixture(scope="module")
def data():
    toy = GaussianMixtureToy(num_classes=4, shape=(1, 4, 4), std=0.3, separation=0.6)
    x, y = toy.sample_data(512, generator=torch.Generator().manual_seed(0))
    return toy, x, y


def _train(data, loss, **params):
    toy, x, y = data
    torch.manual_seed(0)
    clf = TinyClassifier(16, 4)
    diff = gk.GaussianDiffusion.create(learn_sigma=False)
    cfg = TrainConfig(steps=300, batch_size=64, lr=3e-3, loss=loss, loss_params=params, log_every=100)
    return clf, train_classifier(clf, x, y, diff, cfg, progress=False).records


def test_ce_learns_and_ect_keeps_predictions_softer(data):
    toy, x, y = data
    ce, ce_log = _train(data, "ce")
    ect, ect_log = _train(data, "ect", eta=1.0)
    assert ce_log[-1]["loss"] < ce_log[0]["loss"]
    t = torch.full((len(x),), 50)
    diff = gk.GaussianDiffusion.create(learn_sigma=False)
    x_t = diff.q_sample(x, t, torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        acc = (ce(x_t, t).argmax(-1) == y).float().mean().item()
        h_ce = gk.GuidanceState(t=t, t_index=0, num_steps=1, logits=ce(x_t, t), grad=None, y=y).entropy.mean()
        h_ect = gk.GuidanceState(t=t, t_index=0, num_steps=1, logits=ect(x_t, t), grad=None, y=y).entropy.mean()
    assert acc > 0.9
    assert h_ect > 1.5 * h_ce  # the entropy constraint (Eq. 11) keeps p(ỹ|x_t) away from one-hot
    assert ect_log[-1]["entropy"] > ce_log[-1]["entropy"]


def test_training_is_reproducible_from_the_seed(data):
    a, log_a = _train(data, "ce")
    b, log_b = _train(data, "ce")
    assert log_a == log_b
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_bad_training_input_is_named(data):
    toy, x, y = data
    clf, diff = TinyClassifier(16, 4), gk.GaussianDiffusion.create(learn_sigma=False)
    with pytest.raises(gk.InvalidParameterError, match="one label per image"):
        train_classifier(clf, x, y[:-1], diff, TrainConfig(steps=1), progress=False)
    with pytest.raises(gk.LabelError, match="out of range"):
        train_classifier(clf, x, y + 10, diff, TrainConfig(steps=1), progress=False)
    with pytest.raises(gk.UnknownComponentError, match="Did you mean 'ect'"):
        train_classifier(clf, x, y, diff, TrainConfig(steps=1, loss="etc"), progress=False)
    with pytest.raises(ValueError):
        TrainConfig(steps=0)
