"""The code the docs show runs: the tutorial's scalers pass the scaler contract and guide a sampling run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import guidekit as gk
from guidekit.registry import default_registry
from guidekit.testing.contracts import ScalerContract
from guidekit.toy import GaussianMixtureToy

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
NAMES = ("late-boost", "confidence")


def _load_example():
    """docs/examples/my_scalers.py, imported once; the scalers it registers are removed again at once, so
    other tests see the usual registry (the fixture below registers them for the tests that need them)."""
    spec = importlib.util.spec_from_file_location("my_scalers", EXAMPLES / "my_scalers.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        registered = {name: default_registry().get("scaler", name).factory for name in NAMES}
    finally:
        for name in NAMES:
            default_registry().remove("scaler", name)
    assert registered == {"late-boost": module.late_boost, "confidence": module.ConfidenceScaler}
    return module


MY_SCALERS = _load_example()


@pytest.fixture
def registered_examples():
    gk.register_scaler("late-boost")(MY_SCALERS.late_boost)
    gk.register_scaler("confidence")(MY_SCALERS.ConfidenceScaler)
    yield
    for name in NAMES:
        default_registry().remove("scaler", name)


def test_the_tutorial_scalers_are_created_by_name(registered_examples):
    assert set(NAMES) <= set(gk.available("scaler"))
    assert gk.create("scaler", "confidence", gamma=2.0) == MY_SCALERS.ConfidenceScaler(gamma=2.0)


class TestLateBoostContract(ScalerContract):
    def make_scaler(self):
        return MY_SCALERS.late_boost(gamma=2.0, after=500)


class TestConfidenceContract(ScalerContract):
    def make_scaler(self):
        return MY_SCALERS.ConfidenceScaler(gamma=2.0)


def test_the_tutorial_scaler_guides_a_sampling_run(registered_examples):
    toy = GaussianMixtureToy(num_classes=4, shape=(1, 4, 4), seed=0)
    diff = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=False, respacing="ddim5")
    trace = gk.GuidanceTrace()
    guidance = gk.ClassifierGuidance(toy.classifier(), "late-boost", gamma=1.0, after=500, factor=3.0)
    gk.sample(toy.denoiser(), diff, (4, 1, 4, 4), guidance=guidance, y=torch.arange(4), seed=0, callback=trace,
              progress=False)
    scales, t = trace.tensor("scale"), torch.tensor(trace.t)  # (steps, B): γ early, 3γ once t < 500
    assert bool((t >= 500).any()) and bool((t < 500).any())
    assert torch.equal(scales[t >= 500], torch.ones_like(scales[t >= 500]))
    assert torch.equal(scales[t < 500], torch.full_like(scales[t < 500], 3.0))
