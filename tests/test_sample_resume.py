"""``guidekit sample --resume``: runs killed with SIGKILL at random moments (one process, and torchrun with two)
continue to the same samples, byte for byte, as one uninterrupted run; outputs are never replaced silently."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import guidekit_adm as adm
import numpy as np
import pytest
import torch

from guidekit.cli import main

UNET_FLAGS = (
    "--image_size 64 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1,1 --attention_resolutions 8 "
    "--num_head_channels 32 --learn_sigma True --class_cond True --resblock_updown True"
)
CLASSIFIER_FLAGS = "--image_size 64 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 8"
NUM, BATCH = 8, 2
NAME = f"samples_{NUM}x64x64x3"


@pytest.fixture(scope="module")
def args(tmp_path_factory) -> list[str]:
    """``guidekit sample`` arguments (no --out) for a tiny guided UNet with random weights: 8 samples, batches of 2."""
    folder = tmp_path_factory.mktemp("nets")
    torch.manual_seed(0)
    for flags, name in ((UNET_FLAGS, "unet.pt"), (CLASSIFIER_FLAGS, "classifier.pt")):
        model = adm.create_model(flags)
        for p in model.parameters():
            p.data.normal_(0, 0.05)
        torch.save(model.state_dict(), folder / name)
    return ["sample", f"--model={UNET_FLAGS}", "--model-path", str(folder / "unet.pt"),
            f"--classifier={CLASSIFIER_FLAGS}", "--classifier-path", str(folder / "classifier.pt"),
            "--scaler", "entropy", "--gamma", "3", "--respacing", "ddim4", "--num-samples", str(NUM),
            "--batch-size", str(BATCH), "--seed", "11", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def reference(args, tmp_path_factory) -> dict[str, bytes]:
    """The uninterrupted single-process run."""
    out = tmp_path_factory.mktemp("reference")
    assert main([*args, "--out", str(out)]) == 0
    return _arrays(out / "samples.npz")


def _arrays(path: Path) -> dict[str, bytes]:
    with np.load(path) as data:
        return {k: data[k].tobytes() for k in ("arr_0", "arr_1")}


def _chunks_done(manifest: Path) -> int:
    try:
        return len(json.loads(manifest.read_text())["chunks"])
    except (OSError, ValueError, KeyError):
        return -1  # not written yet


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in their own sessions)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _run_and_kill(cmd: list[str], manifests: list[Path], rng: random.Random, env: dict[str, str]) -> int | None:
    """Start ``cmd``; once it has committed a random number of further chunks (0 included: killed while
    starting), wait a random moment and SIGKILL it with all its processes. Returns the chunks done at the
    kill, summed over ``manifests`` (None: it finished first)."""
    done = sum(max(_chunks_done(m), 0) for m in manifests)
    target = done + rng.randint(0, max(NUM // BATCH - 1 - done, 0))  # all chunks may be done already
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and sum(max(_chunks_done(m), 0) for m in manifests) < target:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.4))
    if proc.poll() is not None:
        assert proc.returncode == 0, proc.stderr.read().decode()
        return None
    for pid in [*_descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    proc.stderr.close()
    return sum(max(_chunks_done(m), 0) for m in manifests)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return env | {"OMP_NUM_THREADS": "1"}


def test_sigkilled_run_resumes_to_the_uninterrupted_result(args, reference, tmp_path):
    rng = random.Random(0)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "guidekit.cli", *args, "--out", str(out)]
    manifest = out / "samples.parts" / "manifest.json"
    kills = [_run_and_kill(cmd, [manifest], rng, _env())]  # chunks done at each kill
    for _ in range(3):
        kills.append(_run_and_kill([*cmd, "--resume"], [manifest], rng, _env()))
    assert kills[0] is not None  # the first run was killed (the resumed ones may finish first)
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert _arrays(out / "samples.npz") == reference
    assert not (out / "samples.parts").exists() and not list(out.glob(".*.tmp"))
    record = json.loads((out / "run.json").read_text())
    assert record["options"]["seed"] == 11 and record["sample_range"] == [0, NUM]
    # finished: --resume has nothing left to do; a plain rerun refuses to overwrite
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert main([*args, "--out", str(out)]) == 1


def test_torchrun_two_processes_killed_and_resumed(args, reference, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "guidekit.cli", *args, "--out", str(out)]
    manifests = [out / f"{NAME}_shard{i}of2.parts" / "manifest.json" for i in range(2)]
    rng = random.Random(3)
    killed = _run_and_kill(cmd, manifests, rng, _env())
    assert killed is not None
    done = subprocess.run([*cmd, "--resume"], env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    shards = [str(out / f"{NAME}_shard{i}of2.npz") for i in range(2)]
    assert main(["merge-batches", str(tmp_path / "merged.npz"), *shards]) == 0
    assert _arrays(tmp_path / "merged.npz") == reference


def test_partial_state_is_redone_and_options_are_checked(args, reference, tmp_path, capsys):
    out = tmp_path / "run"
    parts = out / "samples.parts"
    assert main([*args, "--out", str(out)]) == 0
    # a run killed mid-way: rebuild its parts folder from the finished batch, minus chunks and with debris
    with np.load(out / "samples.npz") as data:
        images, labels = data["arr_0"], data["arr_1"]
    from guidekit.resume import ChunkedSampleBatch

    run = ChunkedSampleBatch(out / "samples.npz", 0, NUM, (64, 64, 3), mode="overwrite",
                             record=out / "run.json", companions=[out / "grid.png"])
    options = json.loads((out / "run.json").read_text())["options"]
    assert not run.prepare(options) and not (out / "samples.npz").exists()
    run.commit(0, images[:2], labels[:2])
    run.commit(4, np.zeros_like(images[4:6]), labels[4:6])
    manifest = json.loads((parts / "manifest.json").read_text())
    manifest["chunks"] = [[0, 2]]  # chunk [4, 6) was written but not recorded: it must be redone
    (parts / "manifest.json").write_text(json.dumps(manifest))
    (parts / ".chunk_000000002_000000004.npz.x.tmp").write_bytes(b"cut short")
    (out / ".samples.npz.y.tmp").write_bytes(b"cut short")

    assert main([*args, "--out", str(out), "--seed", "12", "--resume"]) == 1
    assert "--seed: was 11, now 12" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--batch-size", "4", "--resume"]) == 1
    assert "--batch-size" in capsys.readouterr().err
    assert main([*args, "--out", str(out)]) == 1  # neither --resume nor --overwrite
    assert "--resume" in capsys.readouterr().err and parts.exists()

    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert "resuming: 2/8 samples already done" in capsys.readouterr().err
    assert _arrays(out / "samples.npz") == reference
    assert not parts.exists() and not list(out.glob(".*.tmp"))
    # a finished run resumed with other options is refused too; --overwrite replaces it
    assert main([*args, "--out", str(out), "--gamma", "2", "--resume"]) == 1
    assert "--gamma: was 3.0, now 2.0" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--gamma", "2", "--overwrite"]) == 0
    assert _arrays(out / "samples.npz") != reference


def test_merge_batches_never_overwrites_silently(tmp_path, capsys):
    from guidekit.io import write_sample_batch

    a = write_sample_batch(tmp_path / "a.npz", np.zeros((2, 4, 4, 3), np.uint8), np.arange(2))
    b = write_sample_batch(tmp_path / "b.npz", np.ones((1, 4, 4, 3), np.uint8), np.arange(1))
    out = tmp_path / "merged.npz"
    assert main(["merge-batches", str(out), str(a), str(b)]) == 0
    before = out.read_bytes()
    assert main(["merge-batches", str(out), str(b), str(a)]) == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["merge-batches", str(a), str(a), str(b), "--overwrite"]) == 1
    assert "also an input" in capsys.readouterr().err
    assert main(["merge-batches", str(out), str(b), str(a), "--overwrite"]) == 0
    with np.load(out) as data:
        assert data["arr_1"].tolist() == [0, 0, 1]


def test_sample_cli_fast_path(args, reference, tmp_path, capsys):
    """--fast (bf16 autocast on the CPU) gives the run's labels and images within the stated bf16 tolerance."""
    out = tmp_path / "fast"
    assert main([*args, "--fast", "--out", str(out)]) == 0
    with np.load(out / "samples.npz") as data:
        images, labels = data["arr_0"].astype(int), data["arr_1"]
    ref = np.frombuffer(reference["arr_0"], np.uint8).reshape(images.shape).astype(int)
    assert labels.tobytes() == reference["arr_1"]
    assert np.abs(images - ref).max() <= 13 and np.abs(images - ref).mean() < 1  # 0.1 and 1e-3 in [-1, 1], and truncation
    assert json.loads((out / "run.json").read_text())["options"]["fast"] is True
    assert main([*args, "--out", str(out), "--resume"]) == 1
    assert "--fast: was True, now False" in capsys.readouterr().err


def test_resume_with_another_sample_or_shard_count_is_refused(args, tmp_path, capsys):
    """Those options change the file names; a resume must not start a second run beside the unfinished one."""
    out = tmp_path / "run"
    parts = out / f"{NAME}_shard1of2.parts"
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"format": "guidekit-sample-chunks/1", "chunks": [],
                                                     "options": {"num_shards": 2, "shard_index": 1}}))
    assert main([*args, "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "--num-shards: was 2, now 1" in err and "--shard-index" in err
    assert main([*args, "--out", str(out), "--num-samples", "6", "--num-shards", "2", "--shard-index", "1",
                 "--resume"]) == 1
    assert "--num-samples" in capsys.readouterr().err
    assert not list(out.glob("samples_6x*"))


def test_ctrl_c_keeps_the_finished_chunks(args, reference, tmp_path, capsys, monkeypatch):
    import guidekit as gk

    real, calls = gk.sample, []

    def interrupted_on_the_third_batch(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    out = tmp_path / "run"
    monkeypatch.setattr(gk, "sample", interrupted_on_the_third_batch)
    assert main([*args, "--out", str(out)]) == 130
    assert "interrupted with 4/8 samples kept" in capsys.readouterr().err
    monkeypatch.undo()
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert _arrays(out / "samples.npz") == reference
