"""Training checkpoints: a flipped byte, a full disk or a read-only folder at save time, replaced data (issue 18)."""

from __future__ import annotations

import errno
import os
import tempfile

import pytest
import torch

import guidekit as gk
from guidekit.errors import IdentityError, InvalidParameterError, WriteError

from .conftest import flip_byte

DIFF = gk.GaussianDiffusion.create(steps=100, learn_sigma=False)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _train(checkpoint, steps=4, images=None, **kw):
    torch.manual_seed(0)
    images = torch.linspace(-1, 1, 4 * 16).reshape(4, 1, 4, 4) if images is None else images
    config = gk.TrainConfig(steps=steps, batch_size=2, log_every=1, save_every=2)
    return gk.train_classifier(Net(), images, torch.arange(len(images)) % 4, DIFF, config, checkpoint=checkpoint,
                               progress=False, **kw)


def test_a_flipped_byte_in_a_checkpoint_is_named_on_resume(tmp_path):
    path = tmp_path / "c.pt"
    _train(path, steps=2)
    weight = torch.load(path, weights_only=True)["model"]["linear.weight"]
    data = path.read_bytes()
    flip_byte(path, data.index(weight[1].numpy().tobytes()), 0x10)  # inside a tensor: torch.load checks no CRC
    assert torch.load(path, weights_only=True)["step"] == 2  # still loads
    with pytest.raises(IdentityError, match=r"training checkpoint .*c\.pt is damaged.*Restore it from a copy"):
        _train(path, resume=True)


def test_disk_full_at_a_save_keeps_the_last_checkpoint_and_resume_finishes_the_same(tmp_path, disk_full):
    whole = _train(tmp_path / "whole.pt")
    path = tmp_path / "c.pt"
    _train(path, steps=4, stop_after=2)
    disk_full(1)
    with pytest.raises(WriteError, match=r"c\.pt': no space left.*stopped at step 4, the checkpoint of step 2 is kept"):
        _train(path, resume=True)
    disk_full(10**9)
    assert torch.load(path, weights_only=True)["step"] == 2 and not list(tmp_path.glob(".*.tmp"))
    resumed = _train(path, resume=True)
    assert resumed.records == whole.records
    assert all(torch.equal(resumed.ema[k], whole.ema[k]) for k in whole.ema)


def test_torch_save_failure_names_the_file(tmp_path, monkeypatch):
    def failing(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(WriteError, match=r"cannot write .*c\.pt'.*no checkpoint was written yet"):
        _train(tmp_path / "c.pt", steps=2)


def test_a_read_only_folder_is_named_before_the_first_step(tmp_path, monkeypatch):
    real = tempfile.mkstemp

    def read_only(*a, **k):
        if str(k.get("dir", "")).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    steps = []
    with pytest.raises(WriteError, match="the file system is read-only; .*nothing was computed yet"):
        _train(tmp_path / "c.pt", steps=2, callback=steps.append)
    assert steps == []


def test_resume_with_other_data_of_the_same_shape_is_refused(tmp_path):
    """One image changed where the old 256-image fingerprint did not look; the full sha256 sees it."""
    images = torch.linspace(-1, 1, 600 * 16).reshape(600, 1, 4, 4)
    _train(tmp_path / "c.pt", steps=2, images=images)
    other = images.clone()
    other[1] = 0  # index 1 is not among the 256 evenly spaced images of the old fingerprint
    with pytest.raises(InvalidParameterError, match="another training data"):
        _train(tmp_path / "c.pt", images=other, resume=True)


def test_checkpoints_of_older_versions_still_resume(tmp_path):
    """A checkpoint without "identity" and with the old data fingerprint (no content_sha256) resumes."""
    path = tmp_path / "c.pt"
    _train(path, steps=2)
    saved = torch.load(path, weights_only=True)
    del saved["identity"], saved["settings"]["data"]["content_sha256"], saved["settings"]["code"]
    torch.save(saved, path)
    assert _train(path, resume=True).step == 4
