"""Long commands say what they are doing: compare counts sampling steps per cell with the time left and says
which respacing it took; training says where it resumes (the demo's strategy lines: tests/test_cli.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import guidekit as gk
from guidekit.comparison import models
from guidekit.io import load_batch, write_reference_batch

pytest.importorskip("guidekit_mnist16")


class _WithCard:
    """A plugin providing mnist16-unet under another name, its card naming a respacing."""

    def __init__(self, respacing: str) -> None:
        self.respacing = respacing

    @gk.hookspecs.hookimpl
    def guidekit_networks(self):
        def build():
            net = gk.create("network", "mnist16-unet")
            net.card = {**net.card, "diffusion": {**net.card["diffusion"], "respacing": self.respacing}}
            return net

        return [gk.Component("mnist16-unet-carded", build, "mnist16-unet whose card names a respacing")]


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    """20 real mnist16 digits as the reference batch (the full 5,000 take a minute to judge)."""
    card = gk.create("network", "mnist16-unet").card
    path = tmp_path_factory.mktemp("ref") / "ref.npz"
    write_reference_batch(path, np.asarray(load_batch(card["reference_batch"]).images()[::250]))
    return path


def test_compare_counts_steps_names_the_cell_and_explains_the_respacing(tmp_path, capsys, monkeypatch,
                                                                         small_reference):
    monkeypatch.setenv("GUIDEKIT_PROGRESS_INTERVAL", "0")  # off a terminal: a line at every update
    with gk.registered(_WithCard("ddim2"), "carded"):
        gk.compare("mnist16-unet-carded", ["mnist16-classifier-ce"], ["constant:0,1"], out=tmp_path / "o", seeds=1,
                   num_samples=3, k=1, batch_size=2, device="cpu", plots=False, reference_batch=small_reference)
    err = capsys.readouterr().err
    assert "no --respacing given: using 'ddim2' from the model card" in err
    lines = [line for line in err.splitlines() if line.startswith("compare: ")]
    # 2 computations (the unguided γ = 0 one and γ = 1) × 2 batches × 2 steps = 8 steps, counted one by one
    counts = [int(re.match(r"compare: (\d+)/8 ", line)[1]) for line in lines]
    assert counts == list(range(1, 9))
    assert any("cell 1/2: unguided seed 0" in line for line in lines)
    assert any("cell 2/2: mnist16-classifier-ce constant gamma=1.0 seed 0" in line for line in lines)
    assert all("<" in line and "step" in line for line in lines[1:])  # elapsed<left, rate in steps


def test_compare_with_its_respacing_given_explains_nothing(tmp_path, capsys, small_reference):
    gk.compare("mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp_path / "o", seeds=1, num_samples=2,
               k=1, batch_size=2, respacing="ddim2", device="cpu", plots=False, show_progress=False,
               reference_batch=small_reference)
    err = capsys.readouterr().err
    assert "--respacing" not in err and "compare: " not in err


def test_the_respacing_explanations():
    unet = gk.create("network", "mnist16-unet")
    assert "sampling all 1000 steps, which is slow; pass --respacing ddim25" in models.explain_respacing(unet, "", 1000)
    unet.card = {**unet.card, "diffusion": {**unet.card["diffusion"], "respacing": "ddim10"}}
    assert "using 'ddim10' from the model card" in models.explain_respacing(unet, "ddim10", 1000)
    release = gk.create("network", "mnist16-classifier-ce")  # no card respacing: as an ADM release with a README one
    release.card = {}
    assert "'250', the respacing the release's README suggests" in models.explain_respacing(release, "250", 1000)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 3)

    def forward(self, x, t):
        return self.lin(x.flatten(1))


def test_training_says_which_step_it_resumes_from(tmp_path, capsys):
    diff = gk.GaussianDiffusion.create(steps=100, schedule="linear", learn_sigma=False)
    images, labels = torch.zeros(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    config = gk.TrainConfig(steps=4, batch_size=2, save_every=2, log_every=1)
    gk.train_classifier(_Tiny(), images, labels, diff, config, checkpoint=tmp_path / "c.pt", stop_after=2,
                        progress=False)
    assert "resuming" not in capsys.readouterr().out
    gk.train_classifier(_Tiny(), images, labels, diff, config, checkpoint=tmp_path / "c.pt", resume=True,
                        progress=False)
    assert f"resuming from step 2 of 4 ({tmp_path / 'c.pt'})" in capsys.readouterr().out
