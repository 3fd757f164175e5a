"""Training output folders read back by ``guidekit sample --model RUN`` (second pass of issue 18): weights replaced,
a card edited by hand, a folder a registered name shadows, a full disk or a SIGKILL between the weights and the card,
and a folder that a training run is writing right now."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file

import guidekit as gk
from guidekit.cli import main
from guidekit.errors import IdentityError
from guidekit.io import load_batch, output_lock
from guidekit.training import export_weights

from .conftest import TRAIN, UNET8

SAMPLE = ["--respacing", "ddim2", "--num-samples", "2", "--batch-size", "2", "--device", "cpu", "--no-progress"]


@pytest.fixture
def run(tiny_unet, tmp_path):
    """A copy of the tiny training folder, to damage."""
    return shutil.copytree(tiny_unet, tmp_path / "run")


def _sample(model, out, *extra) -> int:
    return main(["sample", "--model", str(model), *SAMPLE, "--out", str(out), *extra])


def _edit_card(run, **changes):
    card = json.loads((run / "card.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key].update(value)
        else:
            card[key] = value
    (run / "card.json").write_text(json.dumps(card))


def test_weights_of_another_run_are_refused(run, tmp_path, capsys):
    state = load_file(str(run / "model.safetensors"))
    export_weights({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, run / "model.safetensors")
    assert _sample(run, tmp_path / "s") == 1
    err = capsys.readouterr().err
    assert "model.safetensors does not match the sha256 its card records" in err and "restore it from a copy" in err
    assert not (tmp_path / "s" / "samples.npz").exists()


@pytest.mark.parametrize(("changes", "field"), [({"diffusion": {"steps": 1000}}, "'diffusion'"),
                                                ({"diffusion": {"schedule": "cosine"}}, "'diffusion'"),
                                                ({"image_size": 16, "sha256": "0" * 64}, "'image_size', 'sha256'"),
                                                ({"null_label": 1}, "'null_label'")])
def test_a_card_edited_by_hand_is_refused_naming_the_field(run, tmp_path, capsys, changes, field):
    _edit_card(run, **changes)  # was sampled with the edited process, silently
    assert _sample(run, tmp_path / "s") == 1
    err = capsys.readouterr().err
    assert f"card.json was edited after training: its {field} differ" in err and "--resume" in err
    with pytest.raises(IdentityError, match="was edited after training"):
        gk.load_network(run, device="meta")  # the Python API too, before any weight is read


def test_class_names_may_be_edited(run, tmp_path):
    _edit_card(run, class_names=["cat", "dog"], classes={"0": "cat", "1": "dog"})
    assert _sample(run, tmp_path / "s") == 0
    assert json.loads((tmp_path / "s" / "run.json").read_text())["class_names"] == ["cat", "dog"]


def test_a_training_folder_named_like_a_registered_network_is_not_shadowed(tiny_unet, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_unet, tmp_path / "mnist16-unet")
    assert _sample("mnist16-unet", tmp_path / "s") == 1  # sampled the bundled 16px model, silently
    err = capsys.readouterr().err
    assert "'mnist16-unet' names both a registered network" in err and "write './mnist16-unet'" in err
    assert _sample("./mnist16-unet", tmp_path / "s") == 0
    assert load_batch(tmp_path / "s" / "samples.npz").image_shape == (2, 8, 8, 1)


def _train(data, out, *extra) -> int:
    return main(["train-diffusion", "--data", str(data), "--flags", UNET8, "--steps", "1", *TRAIN, "--out", str(out),
                 *extra])


@pytest.mark.parametrize("name", ["model.safetensors", "card.json"])
@pytest.mark.parametrize("first", [True, False], ids=["first run", "--overwrite of a finished run"])
def test_a_full_disk_at_the_end_of_training_says_resume(tiny_data, tiny_unet, tmp_path, capsys, disk_full_at, name,
                                                        first):
    out = tmp_path / "t"
    if not first:
        shutil.copytree(tiny_unet, out)
    seed = [] if first else ["--seed", "1"]
    disk_full_at(name)
    assert _train(tiny_data, out, *seed, *([] if first else ["--overwrite"])) == 1
    err = capsys.readouterr().err
    assert f"cannot write {str(out / name)!r}: no space left on the device" in err
    assert "run the same command with --resume to write the weights and card" in err
    assert not (out / "card.json").exists()  # no card beside weights it does not describe
    assert _sample(out, tmp_path / "s") == 1  # was "no training output folder", or "damaged or replaced"
    assert "holds a training checkpoint but no card.json" in capsys.readouterr().err
    disk_full_at(None)
    assert _train(tiny_data, out, *seed) == 1  # was "holds a finished run: pass --overwrite", which loses the training
    assert "already holds a training run: pass resume=True (--resume)" in capsys.readouterr().err
    assert _train(tiny_data, out, *seed, "--resume") == 0
    assert _sample(out, tmp_path / "s") == 0


KILLED_AT_EXPORT = """
import os, signal, sys
import guidekit.training.cli as cli
real = cli.export_weights


def export(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # between the weights and the card


cli.export_weights = export
from guidekit.cli import main
from guidekit.errors import IdentityError
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_between_weights_and_card_then_resume(tiny_data, run, tmp_path, capsys):
    argv = ["train-diffusion", "--data", str(tiny_data), "--flags", UNET8, "--steps", "1", "--seed", "1",
            *TRAIN, "--out", str(run)]
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_EXPORT, *argv, "--overwrite"], capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    trained = (run / "model.safetensors").read_bytes()  # the new weights, written just before the kill
    assert _sample(run, tmp_path / "s") == 1  # was "model.safetensors ... was damaged or replaced after training"
    assert "its training has not finished (or was killed" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert "taking over the stale lock of guidekit train-diffusion" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == trained  # the resume writes the weights of that training
    assert _sample(run, tmp_path / "s") == 0


def test_a_folder_being_trained_is_named_by_its_trainer(run, tmp_path, capsys):
    with output_lock(run, "guidekit train-diffusion"):
        assert _sample(run, tmp_path / "s") == 0  # its current weights and card agree: sampled, with a warning
        assert "is being written by guidekit train-diffusion (pid" in capsys.readouterr().err
        (run / "card.json").unlink()  # between a --overwrite's weights and card
        assert _sample(run, tmp_path / "s2") == 1
        assert "it is being trained by guidekit train-diffusion (pid" in capsys.readouterr().err


def test_a_file_of_a_training_folder_names_the_folder(run, capsys, tmp_path):
    for name in ("card.json", "model.safetensors"):
        assert _sample(run / name, tmp_path / "s") == 1
        assert f"is a file of the training folder {run}; name the folder itself" in capsys.readouterr().err
