"""Tiny diffusers models built from configs with random weights, offline (HF_HUB_OFFLINE=1: never a hub)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
from guidekit_diffusers.testing import K, TinyClassifier, tiny_unet  # noqa: E402


@pytest.fixture(scope="session")
def unet():
    return tiny_unet()


@pytest.fixture(scope="session")
def cond_unet():
    return tiny_unet(num_classes=K + 1)


@pytest.fixture(scope="session")
def classifier():
    return TinyClassifier().eval()
