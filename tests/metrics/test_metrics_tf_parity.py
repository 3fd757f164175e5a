"""Evaluator parity below the network: TensorFlow's ResizeBilinear bit for bit, and no TF32 while extracting.

``data/tf_resize_bilinear.npz`` holds TensorFlow's own outputs (written once by
``scripts/make_tf_resize_fixture.py``, TensorFlow version stored in the file): for each case the input,
the SHA-256 of TF's whole float32 output and its rows (all of them, or every ``row_stride``-th).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from guidekit.extractors.base import no_tf32
from guidekit.extractors.inception import InceptionV3, resize_bilinear_tf1
from guidekit.extractors.small import SmallCNN

FIXTURE = Path(__file__).parent / "data" / "tf_resize_bilinear.npz"
with np.load(FIXTURE) as _data:
    CASES = sorted({key.split("/")[0] for key in _data.files if "/" in key})


@pytest.fixture(scope="module")
def tf_data() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


def _sha256(nhwc: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(nhwc.astype(np.float32) + np.float32(0.0)).tobytes()).hexdigest()


def test_fixture_covers_the_evaluator_cases(tf_data):
    assert str(tf_data["tf_version"]).startswith("2.")
    to_299 = [c for c in CASES if tf_data[f"{c}/size"].tolist() == [299, 299]]
    in_sizes = {tf_data[f"{c}/input"].shape[1:3] for c in to_299}
    assert {(8, 8), (16, 16), (32, 32), (64, 64), (256, 256)} <= in_sizes
    assert any(h != w for h, w in in_sizes)  # non-square inputs
    assert any(tf_data[f"{c}/input"].dtype == np.float32 for c in to_299)  # non-integer values too
    assert len(CASES) - len(to_299) >= 4  # other output sizes, down-scaling included


@pytest.mark.parametrize("case", CASES)
def test_resize_matches_tensorflow_bit_for_bit(tf_data, case):
    images = tf_data[f"{case}/input"]
    out_h, out_w = tf_data[f"{case}/size"].tolist()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()  # the evaluator feeds float32 0-255
    ours = resize_bilinear_tf1(x, (out_h, out_w)).permute(0, 2, 3, 1).numpy()
    assert ours.dtype == np.float32 and ours.shape == (images.shape[0], out_h, out_w, images.shape[3])
    if f"{case}/output" in tf_data:
        theirs, mine = tf_data[f"{case}/output"], ours
    else:
        theirs, mine = tf_data[f"{case}/output_rows"], ours[:, :: int(tf_data["row_stride"])]
    assert float(np.abs(mine - theirs).max()) == 0.0
    assert _sha256(ours) == str(tf_data[f"{case}/sha256"])  # every pixel, not only the stored rows


def test_inception_preprocess_uses_the_tf_resize(tf_data):
    images = tf_data["u8_64_to_299/input"]
    pre = InceptionV3().preprocess(images)
    resized = resize_bilinear_tf1(torch.from_numpy(images).permute(0, 3, 1, 2).float(), 299)
    assert torch.equal(pre, (resized - 128.0) / 128.0)


def _new_api() -> bool:
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv")


def _switches() -> list[tuple[object, str]]:
    b = torch.backends
    if _new_api():
        return [(b.cuda.matmul, "fp32_precision"), (b.cudnn.conv, "fp32_precision")]
    return [(b.cuda.matmul, "allow_tf32"), (b.cudnn, "allow_tf32")]


def _tf32_state() -> list[object]:
    return [getattr(obj, name) for obj, name in _switches()]


def _off() -> list[object]:
    return ["ieee", "ieee"] if _new_api() else [False, False]


@pytest.fixture
def tf32_on() -> Iterator[list[object]]:
    """TF32 switched on for the test (the process-wide settings are put back after)."""
    saved = _tf32_state()
    on = "tf32" if _new_api() else True
    for obj, name in _switches():
        setattr(obj, name, on)
    yield _tf32_state()
    for (obj, name), value in zip(_switches(), saved):
        setattr(obj, name, value)


def test_extraction_runs_without_tf32_and_restores_the_settings(tf32_on):
    before = tf32_on
    assert before != _off()
    model = SmallCNN(num_classes=3)
    seen = []
    model.register_forward_hook(lambda module, args, out: seen.append(_tf32_state()))
    model.extract(np.zeros((2, 8, 8, 1), np.uint8))
    assert seen == [_off()]
    assert _tf32_state() == before

    def fail(module, args, out):
        raise RuntimeError("boom")

    model.register_forward_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        model.extract(np.zeros((1, 8, 8, 1), np.uint8))
    assert _tf32_state() == before  # restored on errors too


def test_no_tf32_keeps_settings_that_were_already_off(tf32_on):
    with no_tf32():
        off = _tf32_state()
        with no_tf32():
            assert _tf32_state() == off
        assert _tf32_state() == off == _off()
