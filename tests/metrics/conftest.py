"""Fixtures for the evaluation tests: a digits extractor trained once per session, and real digits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The models here are tiny: one thread is faster and far steadier on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 N×8×8×1 images and int64 labels."""
    from guidekit.extractors.small import load_digits_uint8

    return load_digits_uint8()


@pytest.fixture(scope="session")
def digits_extractor_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SmallCNN trained on the digits (seeded, a few seconds), saved to a file."""
    from guidekit.extractors.small import train_digits_extractor

    path = tmp_path_factory.mktemp("extractor") / "small_cnn.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train_digits_extractor(path, epochs=10, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert model.train_accuracy > 0.9
    return path
