"""``guidekit sample --guidance NAME --guidance-param KEY=VALUE`` with tiny random-weight ADM networks."""

from __future__ import annotations

import json

import guidekit_adm as adm
import numpy as np
import pytest
import torch

from guidekit.cli import main

UNET_FLAGS = (
    "--image_size 64 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1,1 --attention_resolutions 8 "
    "--num_head_channels 32 --learn_sigma True --class_cond True --use_scale_shift_norm True"
)
CLASSIFIER_FLAGS = "--image_size 64 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 8"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for name, flags in (("unet", UNET_FLAGS), ("classifier", CLASSIFIER_FLAGS)):
        model = adm.create_model(flags)
        for p in model.parameters():
            p.data.normal_(0, 0.05)
        torch.save(model.state_dict(), folder / f"{name}.pt")
    return folder


def _args(weights, out, *extra: str) -> list[str]:
    return ["sample", f"--model={UNET_FLAGS}", "--model-path", str(weights / "unet.pt"), "--respacing", "ddim2",
            "--num-samples", "2", "--batch-size", "2", "--seed", "3", "--classes", "1,5", "--device", "cpu",
            "--no-progress", "--out", str(out), *extra]


def _images(out) -> np.ndarray:
    return np.load(out / "samples.npz")["arr_0"].astype(int)


def test_sample_with_classifier_free_guidance(weights, tmp_path, capsys):
    cfg = ["--guidance", "classifier-free", "--guidance-param", "null_label=999"]
    assert main(_args(weights, tmp_path / "plain")) == 0
    assert main(_args(weights, tmp_path / "w1", *cfg, "--gamma", "1")) == 0
    assert main(_args(weights, tmp_path / "w4", *cfg, "--gamma", "4", "--guidance-param", "batched=False")) == 0
    assert (_images(tmp_path / "w1") == _images(tmp_path / "plain")).all()  # w = 1 is conditional sampling
    assert (_images(tmp_path / "w4") != _images(tmp_path / "plain")).any()
    meta = json.loads((tmp_path / "w4" / "run.json").read_text())
    assert meta["guidance"] == "classifier-free" and meta["guidance_params"] == {"null_label": 999, "batched": False}
    assert meta["gamma"] == 4.0 and meta["scaler"] == "constant"


def test_sample_with_x0_classifier_guidance(weights, tmp_path, capsys):
    clf = ["--classifier", CLASSIFIER_FLAGS, "--classifier-path", str(weights / "classifier.pt")]
    assert main(_args(weights, tmp_path / "x0", *clf, "--guidance", "x0-classifier", "--gamma", "50")) == 0
    assert main(_args(weights, tmp_path / "plain")) == 0
    assert (_images(tmp_path / "x0") != _images(tmp_path / "plain")).any()
    assert json.loads((tmp_path / "x0" / "run.json").read_text())["guidance"] == "x0-classifier"


@pytest.mark.parametrize("extra, message", [
    (["--guidance", "classifier-free"], "null_label"),
    (["--guidance", "x0-classifier"], "needs a classifier"),
    (["--guidance", "classifier-free", "--classifier", CLASSIFIER_FLAGS, "--classifier-path", "c.pt"], "uses no classifier"),
    (["--guidance", "clasifier-free"], "Did you mean 'classifier-free'"),
    (["--guidance", "classifier-free", "--guidance-param", "nul_label=3"], "unknown parameter 'nul_label'"),
    (["--guidance", "classifier-free", "--guidance-param", "null_label=999", "--scaler", "entropy"],
     "scaler EntropyScaler"),
    (["--guidance", "apg", "--guidance-param", "eta"], "--guidance-param expects KEY=VALUE"),
    (["--guidance", "classifier-free", "--guidance-param", "null_label=5"], "--classes holds the null label 5"),
])
def test_guidance_errors_are_named(weights, tmp_path, capsys, extra, message):
    assert main(_args(weights, tmp_path / "bad", *extra)) == 1
    assert message in capsys.readouterr().err


def test_class_cond_mismatch_names_the_flag(weights, tmp_path, capsys):
    """A class-conditional checkpoint under unconditional flags: the hint used to list unrelated releases."""
    argv = ["sample", f"--model={UNET_FLAGS}", "--model-path", str(weights / "unet.pt"), "--no-class-cond",
            "--device", "cpu", "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    assert "hint: the file holds a class-conditional model: use the flag --class_cond True" in capsys.readouterr().err


def test_null_label_that_is_not_the_last_class_asks_for_classes(weights, tmp_path, capsys):
    argv = ["sample", f"--model={UNET_FLAGS}", "--model-path", str(weights / "unet.pt"), "--device", "cpu",
            "--guidance", "classifier-free", "--guidance-param", "null_label=5", "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    assert "null_label=5 is not the model's last class (999)" in capsys.readouterr().err
