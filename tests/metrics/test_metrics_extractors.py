"""Feature extractors: the FID Inception architecture (random weights), the small CNN, registration.

The published Inception weights cannot be downloaded here, so these tests check the architecture
against the layout of the pytorch-fid state dict (key names, shapes, parameter count) written down
independently below, and the loading / preprocessing / output conventions on random weights.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import guidekit
from guidekit.errors import CheckpointError
from guidekit.extractors import FeatureExtractor, MissingWeightsError
from guidekit.extractors.inception import InceptionV3, resize_bilinear_tf1
from guidekit.extractors.small import SmallCNN, train_digits_extractor
from guidekit.testing import random_inception


def _conv(prefix: str, cin: int, cout: int, kh: int, kw: int | None = None) -> dict[str, tuple[int, ...]]:
    kw = kh if kw is None else kw
    shapes = {f"{prefix}.conv.weight": (cout, cin, kh, kw)}
    for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{prefix}.bn.{name}"] = (cout,)
    return shapes


def _block_a(p: str, cin: int, pool: int) -> dict:
    return {**_conv(f"{p}.branch1x1", cin, 64, 1), **_conv(f"{p}.branch5x5_1", cin, 48, 1),
            **_conv(f"{p}.branch5x5_2", 48, 64, 5), **_conv(f"{p}.branch3x3dbl_1", cin, 64, 1),
            **_conv(f"{p}.branch3x3dbl_2", 64, 96, 3), **_conv(f"{p}.branch3x3dbl_3", 96, 96, 3),
            **_conv(f"{p}.branch_pool", cin, pool, 1)}


def _block_c(p: str, c7: int) -> dict:
    return {**_conv(f"{p}.branch1x1", 768, 192, 1), **_conv(f"{p}.branch7x7_1", 768, c7, 1),
            **_conv(f"{p}.branch7x7_2", c7, c7, 1, 7), **_conv(f"{p}.branch7x7_3", c7, 192, 7, 1),
            **_conv(f"{p}.branch7x7dbl_1", 768, c7, 1), **_conv(f"{p}.branch7x7dbl_2", c7, c7, 7, 1),
            **_conv(f"{p}.branch7x7dbl_3", c7, c7, 1, 7), **_conv(f"{p}.branch7x7dbl_4", c7, c7, 7, 1),
            **_conv(f"{p}.branch7x7dbl_5", c7, 192, 1, 7), **_conv(f"{p}.branch_pool", 768, 192, 1)}


def _block_e(p: str, cin: int) -> dict:
    return {**_conv(f"{p}.branch1x1", cin, 320, 1), **_conv(f"{p}.branch3x3_1", cin, 384, 1),
            **_conv(f"{p}.branch3x3_2a", 384, 384, 1, 3), **_conv(f"{p}.branch3x3_2b", 384, 384, 3, 1),
            **_conv(f"{p}.branch3x3dbl_1", cin, 448, 1), **_conv(f"{p}.branch3x3dbl_2", 448, 384, 3),
            **_conv(f"{p}.branch3x3dbl_3a", 384, 384, 1, 3), **_conv(f"{p}.branch3x3dbl_3b", 384, 384, 3, 1),
            **_conv(f"{p}.branch_pool", cin, 192, 1)}


def expected_fid_state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """The pytorch-fid ``pt_inception-2015-12-05`` layout (torchvision Inception3 names, no AuxLogits)."""
    shapes = {
        **_conv("Conv2d_1a_3x3", 3, 32, 3), **_conv("Conv2d_2a_3x3", 32, 32, 3),
        **_conv("Conv2d_2b_3x3", 32, 64, 3), **_conv("Conv2d_3b_1x1", 64, 80, 1),
        **_conv("Conv2d_4a_3x3", 80, 192, 3),
        **_block_a("Mixed_5b", 192, 32), **_block_a("Mixed_5c", 256, 64), **_block_a("Mixed_5d", 288, 64),
        **_conv("Mixed_6a.branch3x3", 288, 384, 3), **_conv("Mixed_6a.branch3x3dbl_1", 288, 64, 1),
        **_conv("Mixed_6a.branch3x3dbl_2", 64, 96, 3), **_conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3),
        **_block_c("Mixed_6b", 128), **_block_c("Mixed_6c", 160), **_block_c("Mixed_6d", 160),
        **_block_c("Mixed_6e", 192),
        **_conv("Mixed_7a.branch3x3_1", 768, 192, 1), **_conv("Mixed_7a.branch3x3_2", 192, 320, 3),
        **_conv("Mixed_7a.branch7x7x3_1", 768, 192, 1), **_conv("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
        **_conv("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1), **_conv("Mixed_7a.branch7x7x3_4", 192, 192, 3),
        **_block_e("Mixed_7b", 1280), **_block_e("Mixed_7c", 2048),
        "fc.weight": (1008, 2048), "fc.bias": (1008,),
    }
    return shapes


@pytest.fixture(scope="module")
def inception() -> InceptionV3:
    return random_inception(seed=0)  # He-initialised convs, non-trivial batch-norm statistics: O(1) activations


def test_inception_state_dict_matches_the_fid_layout(inception):
    own = {k: tuple(v.shape) for k, v in inception.state_dict().items() if not k.endswith("num_batches_tracked")}
    expected = expected_fid_state_dict_shapes()
    assert set(own) == set(expected)
    assert own == expected
    assert len(expected) == 94 * 5 + 2  # 94 conv+bn layers, fc weight and bias
    assert own["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert own["fc.weight"] == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in own)
    # torchvision's Inception3 has 27,161,264 parameters with AuxLogits (3,326,696) and a 1000-way fc;
    # without AuxLogits and with a 1008-way fc that is 23,850,960.
    assert sum(p.numel() for p in inception.parameters()) == 23_850_960


def test_inception_output_shapes_for_all_input_conventions(inception):
    rgb = torch.randint(0, 256, (2, 32, 40, 3), dtype=torch.uint8)
    out = inception.extract(rgb)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"pool": (2, 2048), "spatial": (2, 2023), "logits": (2, 1008)}
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())
    assert all(0.01 < v.abs().max() < 1e4 for v in out.values())  # the comparisons below are not vacuous
    floats = rgb.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # the same images as model output in [-1, 1]
    np.testing.assert_allclose(inception.extract(floats)["pool"], out["pool"], rtol=1e-4, atol=1e-5)
    grey = inception.extract(np.zeros((1, 16, 16, 1), np.uint8))
    assert grey["pool"].shape == (1, 2048)
    assert isinstance(inception, FeatureExtractor) and inception.input_size == 299


def test_inception_logits_ignore_the_fc_bias_and_spatial_is_mixed_6d_branch1x1(inception):
    x = inception.preprocess(torch.randint(0, 256, (1, 20, 20, 3), dtype=torch.uint8))
    captured = {}
    hook = inception.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: captured.setdefault("map", o))
    try:
        with torch.no_grad():
            saved = inception.fc.bias.clone()
            inception.fc.bias.fill_(100.0)
            out = inception(x)
            inception.fc.bias.copy_(saved)
    finally:
        hook.remove()
    torch.testing.assert_close(out["logits"], out["pool"] @ inception.fc.weight.T)
    fmap = captured["map"]
    assert fmap.shape == (1, 192, 17, 17)
    torch.testing.assert_close(out["spatial"], fmap[:, :7].permute(0, 2, 3, 1).reshape(1, -1))  # TF NHWC order


def test_tf1_resize_and_normalisation():
    x = torch.tensor([[[[0.0, 10.0]]]])  # 1×1×1×2
    # TF1 ResizeBilinear (no half-pixel centres): output i samples input i·(2/4) = 0, .5, 1, 1.5 (clamped)
    assert resize_bilinear_tf1(x.expand(1, 1, 4, 2), 4)[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]
    img = torch.rand(1, 3, 7, 7)
    assert torch.equal(resize_bilinear_tf1(img, 7), img)
    model = InceptionV3()
    for value, expected in ((128, 0.0), (0, -1.0), (255, 127 / 128)):
        pre = model.preprocess(torch.full((1, 10, 10, 3), value, dtype=torch.uint8))
        assert pre.shape == (1, 3, 299, 299)
        torch.testing.assert_close(pre, torch.full_like(pre, expected))
    pre = InceptionV3(resize="pytorch-fid").preprocess(torch.full((1, 10, 10, 3), 255, dtype=torch.uint8))
    torch.testing.assert_close(pre, torch.ones_like(pre))


def test_inception_weights_loading(inception, tmp_path, monkeypatch):
    # pytorch-fid's file has no num_batches_tracked entries in some versions: loading tolerates both
    state = {k: v for k, v in inception.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match="SHA-256 does not start with 6726825d"):
        loaded = guidekit.create("extractor", "inception-v3", path=str(path))
    images = torch.randint(0, 256, (1, 8, 8, 3), dtype=torch.uint8)
    torch.testing.assert_close(loaded.extract(images)["pool"], inception.extract(images)["pool"])
    monkeypatch.setenv("GUIDEKIT_INCEPTION_WEIGHTS", str(path))
    InceptionV3.from_weights(check_hash=False)

    del state["Mixed_6b.branch1x1.conv.weight"]
    state["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    expected = r"missing \(1\): Mixed_6b.branch1x1.conv.weight.*unexpected \(1\): extra"
    with pytest.raises(CheckpointError, match=expected):
        InceptionV3.from_weights(bad, check_hash=False)


def test_missing_inception_weights_say_where_to_get_them(monkeypatch, tmp_path):
    monkeypatch.delenv("GUIDEKIT_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError) as info:
        guidekit.create("extractor", "inception-v3")
    message = str(info.value)
    for needle in ("pt_inception-2015-12-05-6726825d.pth", "pytorch-fid", "--inception-weights",
                   "inception_weights=", "GUIDEKIT_INCEPTION_WEIGHTS"):
        assert needle in message
    with pytest.raises(MissingWeightsError, match="does not exist"):
        InceptionV3.from_weights(tmp_path / "absent.pth")


def test_small_cnn_interface_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, input_size=8, width=16, spatial_channels=4)
    images = torch.randint(0, 256, (5, 8, 8, 1), dtype=torch.uint8)
    out = model.features(images)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"pool": (5, 32), "spatial": (5, 64), "logits": (5, 10)}
    assert isinstance(model, FeatureExtractor)
    resized = model.extract(torch.randint(0, 256, (2, 28, 28, 3), dtype=torch.uint8))  # RGB 28×28 → grey 8×8
    assert resized["pool"].shape == (2, 32)
    path = model.save(tmp_path / "small.pt")
    again = guidekit.create("extractor", "small-cnn", path=str(path))
    torch.testing.assert_close(again.extract(images)["logits"], out["logits"])
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a small-cnn file"):
        SmallCNN.load(tmp_path / "other.pt")
    with pytest.raises(MissingWeightsError, match="train_digits_extractor"):
        guidekit.create("extractor", "small-cnn")


def test_digits_training_is_seeded_and_learns(digits_extractor_path, digits):
    model = SmallCNN.load(digits_extractor_path)
    images, labels = digits
    accuracy = (model.extract(images)["logits"].argmax(1).numpy() == labels).mean()
    assert accuracy > 0.9
    a = train_digits_extractor(epochs=1, seed=3)
    b = train_digits_extractor(epochs=1, seed=3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_registration_and_light_imports():
    assert {"inception-v3", "small-cnn"} <= set(guidekit.available("extractor"))
    code = (
        "import sys, guidekit.metrics, guidekit.io, guidekit.extractors.small, guidekit.extractors.inception\n"
        "bad = sorted(m for m in ('sklearn', 'scipy', 'matplotlib', 'PIL', 'torchvision') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
