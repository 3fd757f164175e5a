"""Training data loaders: the mnist16 convention on known pixels, npz files, class folders, errors."""

from __future__ import annotations

import warnings

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


def _save(path, array, mode):
    from PIL import Image as PIL

    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.fromarray(array, mode).save(path)


def test_greyscale_folders_are_read_as_one_channel_and_classes_in_natural_order(tmp_path):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (3, 6, 6), dtype=np.uint8)
    for name, i in (("10", 0), ("2", 1), ("1", 2)):  # sorted as strings: 1, 10, 2
        _save(tmp_path / "f" / name / "img10.png", grey[i], "L")
        _save(tmp_path / "f" / name / "img9.png", 255 - grey[i], "L")
    d = load_dataset(tmp_path / "f")
    assert d.images.shape == (6, 1, 6, 6) and d.class_names == ("1", "2", "10")
    assert d.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # files in natural order too: img9 before img10; class "2" (label 1) holds grey[1]
    assert d.images[2, 0, 0, 0].item() == pytest.approx((255 - int(grey[1, 0, 0])) / 127.5 - 1)
    assert d.images[3, 0, 0, 0].item() == pytest.approx(int(grey[1, 0, 0]) / 127.5 - 1)
    rgb = load_dataset(tmp_path / "f", channels=3)  # converted on request: three equal channels
    assert rgb.images.shape == (6, 3, 6, 6) and torch.equal(rgb.images[:, 0], rgb.images[:, 2])
    assert torch.equal(rgb.images[:, :1], d.images)


def test_colour_folders_stay_rgb_and_convert_to_grey_on_request(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    for i in range(2):
        _save(tmp_path / "f" / "c" / f"{i}.png", rgb[i], "RGB")
    assert load_dataset(tmp_path / "f").images.shape == (2, 3, 5, 5)
    assert load_dataset(tmp_path / "f", channels=1).images.shape == (2, 1, 5, 5)


def test_a_folder_mixing_grey_and_colour_names_a_file(tmp_path):
    _save(tmp_path / "f" / "a" / "grey.png", np.zeros((4, 4), np.uint8), "L")
    _save(tmp_path / "f" / "b" / "colour.png", np.zeros((4, 4, 3), np.uint8), "RGB")
    with pytest.raises(DatasetError, match=r"colour\.png is colour but .*grey\.png is greyscale.*--channels 1"):
        load_dataset(tmp_path / "f")
    assert load_dataset(tmp_path / "f", channels=1).images.shape == (2, 1, 4, 4)


def test_an_empty_class_folder_is_an_error(tmp_path):
    _save(tmp_path / "f" / "a" / "0.png", np.zeros((4, 4), np.uint8), "L")
    (tmp_path / "f" / "b").mkdir()
    with pytest.raises(DatasetError, match=r"class folder .*b holds no images"):
        load_dataset(tmp_path / "f")


def test_sixteen_bit_grey_pngs_are_scaled_not_clipped(tmp_path):
    """A 16-bit PNG (PIL mode I;16) was converted by clipping at 255: every mid-grey pixel became white."""
    from PIL import Image

    levels = np.array([[0, 257, 32768, 65535]], np.uint16).repeat(4, axis=0)
    for name in ("a", "b"):
        (tmp_path / "f" / name).mkdir(parents=True)
        Image.fromarray(levels).save(tmp_path / "f" / name / "x.png")
    assert Image.open(tmp_path / "f" / "a" / "x.png").mode == "I;16"
    d = load_dataset(tmp_path / "f")
    assert d.images.shape == (2, 1, 4, 4)
    assert ((d.images[0, 0, 0] + 1) * 127.5).round().tolist() == [0, 1, 128, 255]  # value * 255 / 65535
    assert torch.equal(load_dataset(tmp_path / "f", channels=3, image_size=4).images[:, :1], d.images)


def test_images_outside_class_folders_and_transparent_pixels_are_reported(tmp_path):
    _save(tmp_path / "f" / "a" / "0.png", np.zeros((4, 4), np.uint8), "L")
    _save(tmp_path / "f" / "loose.png", np.zeros((4, 4), np.uint8), "L")
    with pytest.warns(UserWarning, match=r"1 image\(s\) directly in .*f \(e\.g\. loose\.png\) belong to no class folder"):
        assert len(load_dataset(tmp_path / "f")) == 1
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 255
    _save(tmp_path / "g" / "a" / "opaque.png", rgba, "RGBA")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opaque: nothing to say
        assert load_dataset(tmp_path / "g").images.shape == (1, 3, 4, 4)
    rgba[0, 0, 3] = 0
    _save(tmp_path / "g" / "a" / "clear.png", rgba, "RGBA")
    with pytest.warns(UserWarning, match=r"clear\.png \(and maybe others\) has transparent pixels: the alpha channel"):
        load_dataset(tmp_path / "g")
