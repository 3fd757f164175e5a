"""``guidekit train-diffusion`` / ``train-classifier`` in the core: a folder of one's own images to a guided grid
in three commands, the cards they write, the resume refusal on another architecture, one writer per --out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import guidekit as gk
from guidekit.cli import main
from guidekit.data import load_dataset

UNET8 = ("--image_size 8 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 "
         "--attention_resolutions 2 --num_head_channels 32 --learn_sigma True")
FAST = ["--batch-size", "4", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    """12 mnist16 digits as grey PNGs in class folders named 2, 10 and 1 (natural order: 1, 2, 10)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("digits")
    data = load_dataset("mnist16")
    for label, name in ((0, "2"), (1, "10"), (2, "1")):
        (root / name).mkdir()
        for i in (data.labels == label).nonzero().flatten()[:4].tolist():
            pixels = ((data.images[i, 0].numpy() + 1) * 127.5).round().astype(np.uint8)
            Image.fromarray(pixels, "L").save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def npz8(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, arr_0=rng.integers(0, 255, (8, 8, 8, 1), dtype=np.uint8), arr_1=np.arange(8) % 2)
    return path


def test_a_folder_of_images_to_a_guided_grid_in_three_commands(digits_folder, tmp_path, capsys):
    run, clf, grid = tmp_path / "unet", tmp_path / "clf", tmp_path / "grid"
    data = ["--data", str(digits_folder), "--image-size", "16", "--channels", "1", "--steps", "2"]
    assert main(["train-diffusion", *data, *FAST, "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert "classes: 0=1, 1=2, 2=10" in err and "sample it with: guidekit sample --model" in err
    assert main(["train-classifier", *data, *FAST, "--out", str(clf)]) == 0
    assert main(["sample", "--model", str(run), "--classifier", str(clf), "--scaler", "entropy", "--gamma", "2",
                 "--num-samples", "4", "--respacing", "ddim2", "--device", "cpu", "--no-progress",
                 "--out", str(grid)]) == 0
    with np.load(grid / "samples.npz") as batch:
        assert batch["arr_0"].shape == (4, 16, 16, 1) and batch["arr_0"].dtype == np.uint8
        assert batch["arr_1"].dtype == np.int64 and set(batch["arr_1"].tolist()) <= {0, 1, 2}
    assert (grid / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((grid / "run.json").read_text())
    assert record["class_names"] == ["1", "2", "10"] and record["scaler"] == "entropy"

    net = gk.load_network(str(run))  # the architecture from the card, the EMA weights loaded strictly
    card = net.card
    assert card["role"] == "diffusion" and card["kind"] == "diffusion" and net.num_classes is None
    assert card["network"]["spec"] == card["flags"] and card["flags"].startswith("--image_size 16 --in_channels 1 ")
    assert card["constructor"]["in_channels"] == 1 and card["constructor"]["out_channels"] == 2  # learned sigma
    assert card["image_size"] == 16 and card["channels"] == 1
    assert card["classes"] == {"0": "1", "1": "2", "2": "10"}
    assert card["diffusion"] == {"steps": 1000, "schedule": "linear", "learn_sigma": True}
    assert card["data_fingerprint"]["shape"] == [12, 1, 16, 16] and card["steps"] == 2
    assert not {"loss", "loss_params", "noised"} & set(card["training"])  # no classifier fields in a diffusion card
    assert "class_dropout" in card["training"]
    clf_card = gk.load_network(clf).card
    assert clf_card["role"] == "classifier" and clf_card["num_classes"] == 3
    assert clf_card["training"]["loss"] == "ce" and "class_dropout" not in clf_card["training"]


def test_sample_a_training_folder_without_any_flag(digits_folder, tmp_path):
    """The interface as the issue writes it: nothing but --model RUN, --num-samples and --out."""
    run = tmp_path / "unet"
    assert main(["train-diffusion", "--data", str(digits_folder), "--image-size", "16", "--channels", "1",
                 "--steps", "2", *FAST, "--out", str(run)]) == 0
    assert main(["sample", "--model", str(run), "--num-samples", "4", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0
    with np.load(tmp_path / "s" / "samples.npz") as batch:
        assert batch["arr_0"].shape == (4, 16, 16, 1) and "arr_1" not in batch.files  # unconditional, unguided
    record = json.loads((tmp_path / "s" / "run.json").read_text())
    assert record["respacing"] == "ddim25" and record["sampler"] == "ddim"  # the training card's suggestion


def test_class_dropout_makes_the_default_network_conditional_for_cfg(digits_folder, tmp_path):
    run = tmp_path / "cond"
    assert main(["train-diffusion", "--data", str(digits_folder), "--image-size", "16", "--steps", "2",
                 "--class-dropout", "0.2", *FAST, "--out", str(run)]) == 0
    card = json.loads((run / "card.json").read_text())
    assert card["num_classes"] == 3 and card["null_label"] == 3 and "--num_classes 4" in card["flags"]
    assert main(["sample", "--model", str(run), "--guidance", "classifier-free", "--gamma", "2", "--num-samples", "3",
                 "--respacing", "ddim2", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "s")]) == 0
    with np.load(tmp_path / "s" / "samples.npz") as batch:
        assert set(batch["arr_1"].tolist()) <= {0, 1, 2}  # real labels only: 3 is the null label


def test_resume_refuses_another_architecture(npz8, tmp_path, capsys):
    argv = ["train-diffusion", "--data", str(npz8), "--flags", UNET8, "--steps", "2", "--save-every", "1", *FAST,
            "--out", str(tmp_path / "t")]
    assert main(argv) == 0
    capsys.readouterr()
    # a constructor argument that changes no weight shape: the checkpoint would load, so it must be refused by name
    assert main([*argv, "--steps", "3", "--resume", "--model-param", "dropout=0.1"]) == 1
    err = capsys.readouterr().err
    assert "it was trained with another architecture (constructor.dropout: was 0.0, now 0.1" in err
    assert main([*argv[:4], UNET8.replace("--num_res_blocks 1", "--num_res_blocks 2"), *argv[5:], "--steps", "3",
                 "--resume"]) == 1
    assert "another architecture (constructor.num_res_blocks: was 1, now 2" in capsys.readouterr().err
    assert main([*argv, "--steps", "3", "--resume"]) == 0  # the same architecture continues


def test_channels_of_other_data_and_a_wrong_model_are_named(npz8, tmp_path, capsys):
    base = ["train-diffusion", "--data", str(npz8), "--steps", "1", *FAST, "--out", str(tmp_path / "t")]
    assert main([*base, "--channels", "3"]) == 1
    assert "--channels converts the images of a folder" in capsys.readouterr().err
    assert main([*base, "--model", "mnist16-classifier-ce"]) == 1
    assert "is a classifier network; train-diffusion needs a diffusion architecture" in capsys.readouterr().err
    assert main([*base, "--model", "nothing-such"]) == 1
    assert "no network 'nothing-such'" in capsys.readouterr().err


def _cli(*argv: str, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return subprocess.Popen([sys.executable, "-m", "guidekit.cli", *argv], env=env | {"OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_two_runs_into_one_out_cannot_both_proceed(npz8, tmp_path):
    out = tmp_path / "t"
    argv = ["train-diffusion", "--data", str(npz8), "--flags", UNET8, "--batch-size", "2", "--device", "cpu",
            "--no-progress", "--threads", "1", "--out", str(out)]
    first = _cli(*argv, "--steps", "100000")
    lock = tmp_path / ".t.lock"
    deadline = time.time() + 120
    while not lock.exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    try:
        assert lock.exists(), first.stderr.read() if first.poll() is not None else "no lock after 120 s"
        second = _cli(*argv, "--steps", "2")
        _, err = second.communicate(timeout=300)
        assert second.returncode == 1
        assert f"is being written by guidekit train-diffusion (pid {first.pid} on " in err and "Traceback" not in err
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert lock.exists()  # left behind by the killed run: stale, so the next run takes it over
    third = _cli(*argv, "--steps", "2", "--overwrite")
    _, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    assert f"taking over the stale lock of guidekit train-diffusion (pid {first.pid}" in err
    assert (out / "model.safetensors").is_file() and not lock.exists()


def test_the_default_classifier_builds_for_images_of_one_level(tmp_path, capsys):
    """5×5 (and below 8 px) images give a one-level network of 32 channels, whose attention pool needed 64 per head:
    train-classifier failed with "channels 32 are not divisible by num_head_channels 64" before training."""
    from PIL import Image

    from guidekit.training.cli import default_architecture

    for name, value in (("a", 0), ("b", 255)):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.new("L", (5, 5), value).save(tmp_path / "d" / name / "x.png")
    assert main(["train-classifier", "--data", str(tmp_path / "d"), "--steps", "1", *FAST, "--out",
                 str(tmp_path / "c")]) == 0
    card = json.loads((tmp_path / "c" / "card.json").read_text())
    assert "--classifier_num_head_channels 32" in card["flags"] and card["constructor"]["num_head_channels"] == 32
    data = load_dataset("mnist16")  # larger images keep the architecture they always had (resumable runs)
    assert "num_head_channels" not in default_architecture("classifier", data)
