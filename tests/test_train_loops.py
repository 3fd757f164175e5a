"""Training loops: loss goes down, exact resume, torchrun DDP equals one process, the CLI survives SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import guidekit_adm as adm
import pytest
import torch

import guidekit as gk
from guidekit.data import load_dataset

UNET = ("--image_size 8 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 "
        "--attention_resolutions 2 --num_head_channels 32 --learn_sigma True")
CLASSIFIER = ("--image_size 8 --in_channels 1 --num_classes 10 --classifier_width 32 --classifier_depth 1 "
              "--channel_mult 1,2 --classifier_attention_resolutions 2")
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _unet(flags: str = UNET, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return adm.create_model(flags)


def test_diffusion_training_reduces_the_loss(digits):
    for learn_sigma in (True, False):
        model = _unet(UNET.replace("True", str(learn_sigma)))
        diff = gk.GaussianDiffusion.create(learn_sigma=learn_sigma)
        cfg = gk.TrainConfig(steps=40, batch_size=32, lr=2e-3, log_every=10)
        res = gk.train_diffusion(model, digits.images, None, diff, cfg, progress=False)
        assert res.records[-1]["loss"] < 0.6 * res.records[0]["loss"]
        assert ("vb" in res.records[-1]) == learn_sigma
        assert set(res.ema) == set(model.state_dict()) and not model.training


def test_classifier_training_learns_on_noisy_digits(digits):
    clf = _unet(CLASSIFIER)
    diff = gk.GaussianDiffusion.create(steps=100)
    cfg = gk.TrainConfig(steps=60, batch_size=32, lr=2e-3, log_every=20)
    res = gk.train_classifier(clf, digits.images, digits.labels, diff, cfg, progress=False)
    assert res.records[-1]["loss"] < res.records[0]["loss"]
    assert res.records[-1]["accuracy"] > res.records[0]["accuracy"]


def test_ema_warmup_follows_the_weights_early():
    ema = gk.training.EMA(torch.nn.Linear(2, 2), decay=0.9999)
    assert ema.rate() == pytest.approx(0.1)
    ema.updates = 2000
    assert ema.rate() == pytest.approx(2001 / 2010)
    assert gk.training.EMA(torch.nn.Linear(2, 2), 0.9999, warmup=False).rate() == 0.9999


@pytest.mark.parametrize("kind", ["diffusion-cond", "classifier-ect"])
def test_interrupted_and_resumed_equals_uninterrupted(digits, tmp_path, kind):
    diff = gk.GaussianDiffusion.create(steps=100)
    if kind == "classifier-ect":
        flags, cfg = CLASSIFIER, gk.TrainConfig(steps=9, batch_size=16, lr=1e-3, log_every=1, save_every=4,
                                                 loss="ect", loss_params={"eta": 0.2})
        train = lambda m, **kw: gk.train_classifier(m, digits.images, digits.labels, diff, cfg, progress=False, **kw)  # noqa: E731
    else:
        flags = UNET + " --class_cond True --num_classes 11"
        cfg = gk.TrainConfig(steps=9, batch_size=16, lr=1e-3, log_every=1, save_every=4, class_dropout=0.3)
        train = lambda m, **kw: gk.train_diffusion(m, digits.images, digits.labels, diff, cfg, progress=False, **kw)  # noqa: E731
    whole = train(_unet(flags), checkpoint=tmp_path / "a.pt")
    first = train(_unet(flags), checkpoint=tmp_path / "b.pt", stop_after=4)
    assert first.step == 4 and len(first.records) == 4
    resumed_model = _unet(flags, seed=123)  # other initial weights: everything must come from the checkpoint
    rest = train(resumed_model, checkpoint=tmp_path / "b.pt", resume=True)
    assert rest.records == whole.records  # the loss sequence, every step
    for k, v in whole.ema.items():
        assert torch.equal(v, rest.ema[k]), k
    with pytest.raises(gk.InvalidParameterError, match="already holds a training run"):
        train(_unet(flags), checkpoint=tmp_path / "b.pt")


def test_resume_with_other_settings_is_refused(digits, tmp_path):
    diff = gk.GaussianDiffusion.create(steps=100)
    cfg = gk.TrainConfig(steps=2, batch_size=8, log_every=1)
    gk.train_classifier(_unet(CLASSIFIER), digits.images, digits.labels, diff, cfg, checkpoint=tmp_path / "c.pt", progress=False)
    other = gk.TrainConfig(steps=4, batch_size=8, log_every=1, lr=1e-2)
    with pytest.raises(gk.InvalidParameterError, match="lr=0.0003.*now lr=0.01"):
        gk.train_classifier(_unet(CLASSIFIER), digits.images, digits.labels, diff, other, checkpoint=tmp_path / "c.pt",
                            resume=True, progress=False)
    with pytest.raises(gk.CheckpointError, match="classifier training checkpoint, not a diffusion"):
        gk.train_diffusion(_unet(), digits.images, None, diff, other, checkpoint=tmp_path / "c.pt", resume=True, progress=False)


def test_torchrun_two_processes_equal_one(digits, tmp_path):
    """2 gloo processes, each on half of the same global batch, end where 1 process ends (float tolerance)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "ddp_train_worker.py"), str(tmp_path / "two.pt")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    import importlib.util

    spec = importlib.util.spec_from_file_location("ddp_train_worker", HERE / "ddp_train_worker.py")
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    one = worker.train_once()
    assert two["records"] == pytest.approx(one["records"], rel=1e-5)  # the loss of every step
    # AdamW divides by sqrt(v): a weight whose gradient is ~0 turns float-rounding differences of the
    # all-reduced gradient into a sizeable part of its (lr-sized) step. So compare the steps as a whole,
    # and element-wise everywhere but in a handful of such weights.
    keys = [k for k, v in one["model"].items() if v.is_floating_point()]
    step_one = torch.cat([(one["model"][k] - one["init"][k]).flatten() for k in keys])
    step_two = torch.cat([(two["model"][k] - one["init"][k]).flatten() for k in keys])
    assert step_one.norm() > 0.1
    assert (step_two - step_one).norm() / step_one.norm() < 1e-3
    assert ((step_two - step_one).abs() > 1e-5).double().mean() < 1e-3


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "guidekit.cli", "train-diffusion", "--data", "digits", "--flags", UNET,
            "--out", str(out), "--steps", "12", "--batch-size", "16", "--save-every", "3", "--log-every", "1",
            "--diffusion-steps", "100", "--threads", "1", "--no-progress", *extra]


def test_cli_kill_and_resume_gives_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cli(tmp_path / "whole"), env=env, check=True, capture_output=True, timeout=300)
    whole = load_file(tmp_path / "whole" / "model.safetensors")
    rng = random.Random(0)
    out = tmp_path / "killed"
    for attempt in range(2):  # kill at two random moments after the first checkpoint, then finish
        proc = subprocess.Popen(_cli(out, *(["--resume"] if attempt else [])), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not (out / "checkpoint.pt").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    again = subprocess.run(_cli(out), env=env, capture_output=True, text=True, timeout=300)
    # refused either way: an unfinished run asks for --resume, a finished one (the kills may come late) for --overwrite
    assert again.returncode == 1 and ("--resume" in again.stderr or "--overwrite" in again.stderr)
    assert "Traceback" not in again.stderr
    subprocess.run(_cli(out, "--resume"), env=env, check=True, capture_output=True, timeout=300)
    resumed = load_file(out / "model.safetensors")
    assert resumed.keys() == whole.keys()
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), k
