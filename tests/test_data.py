"""Training data loaders: the mnist16 convention on known pixels, npz files, class folders, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from guidekit.data import DatasetError, load_dataset, mnist16_from_uint8
from guidekit.io import write_sample_batch


@pytest.fixture(scope="module")
def mnist16():
    return load_dataset("mnist16")


def test_mnist16_shape_balance_and_range(mnist16):
    assert mnist16.images.shape == (5000, 1, 16, 16) and mnist16.images.dtype == torch.float32
    assert mnist16.labels.bincount().tolist() == [500] * 10
    assert mnist16.images.min() == -1.0 and mnist16.images.max() <= 1.0


def test_mnist16_known_pixels(mnist16):
    """uint8/255, zero-pad 2 px to 32x32, 2x2 mean pool, x*2-1; the 28x28 values are the raw CSV's."""
    x = mnist16.images[:, 0]
    # padding corner: all four source pixels are zero padding
    assert x[0, 0, 0] == -1.0
    # image 0, output (7, 5) pools padded rows 14-15, cols 10-11 = raw [[178, 252], [252, 252]]
    assert x[0, 7, 5].item() == pytest.approx((178 + 252 + 252 + 252) / 4 / 255 * 2 - 1, abs=1e-7)
    # image 0, output (8, 5): raw [[253, 190], [252, 112]]
    assert x[0, 8, 5].item() == pytest.approx((253 + 190 + 252 + 112) / 4 / 255 * 2 - 1, abs=1e-7)
    # image 1, output (8, 4): raw [[48, 234], [221, 251]]
    assert x[1, 8, 4].item() == pytest.approx((48 + 234 + 221 + 251) / 4 / 255 * 2 - 1, abs=1e-7)


def test_mnist16_convention_on_a_synthetic_digit():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 0, 0] = 255  # lands in padded (2, 2) -> output (1, 1) with three zero neighbours
    out = mnist16_from_uint8(img)
    assert out.shape == (1, 1, 16, 16)
    assert out[0, 0, 1, 1].item() == pytest.approx(255 / 4 / 255 * 2 - 1)
    assert (out.flatten()[out.flatten() != out[0, 0, 1, 1]] == -1).all()


def test_digits_and_split():
    d = load_dataset("digits")
    assert d.images.shape == (1797, 1, 8, 8) and d.num_classes == 10
    train, held = d.split(97, seed=0)
    assert len(train) == 1700 and len(held) == 97
    again, _ = d.split(97, seed=0)
    assert torch.equal(train.images, again.images)


def test_npz_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    path = write_sample_batch(tmp_path / "b.npz", imgs, labels)
    d = load_dataset(path)
    assert d.images.shape == (6, 3, 4, 4) and d.num_classes == 3
    assert d.images[1, 2, 3, 0].item() == pytest.approx(imgs[1, 3, 0, 2] / 127.5 - 1)
    from PIL import Image as PIL
    for c in ("cat", "dog"):
        (tmp_path / "f" / c).mkdir(parents=True)
        for i in range(2):
            PIL.fromarray(imgs[i]).save(tmp_path / "f" / c / f"{i}.png")
    f = load_dataset(tmp_path / "f")
    assert f.class_names == ("cat", "dog") and f.labels.tolist() == [0, 0, 1, 1]
    assert torch.equal(f.images[0], d.images[0])


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nope", "no data set"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no class sub-folders"),
])
def test_bad_data_sources(tmp_path, make, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(make(tmp_path))
