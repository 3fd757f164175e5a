"""One writer per output: a second ``sample``, ``train-*``, ``evaluate`` or ``merge-batches`` into an output that a
running command holds gets an error naming the first (pid, host, start); a lock left by a killed run is taken over.

The first writers are real processes: ``guidekit sample`` with a sampler that waits (``waiting_sampler``), a
``guidekit train-classifier`` that trains for a long time, a process that holds a lock the way ``evaluate``
does, and ``merge-batches`` processes started together. The second writers run in this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

import guidekit.io.lock as lock_module
from guidekit.cli import main
from guidekit.identity import content_record, read_manifest
from guidekit.io import load_batch, write_sample_batch
from guidekit.io.lock import lock_path

from .conftest import chunks_done, start_cli, start_writer, wait_for

HOST = socket.gethostname()
CLF8 = ("--image_size 8 --in_channels 1 --num_classes 2 --channel_mult 1 --classifier_width 32 --classifier_depth 1 "
        "--classifier_attention_resolutions 1 --classifier_num_head_channels 32")


def _named(err: str, command: str, pid: int) -> bool:
    """Whether ``err`` is the lock error naming a first writer ``command`` with ``pid`` on this host."""
    return (f"is being written by {command} (pid {pid} on {HOST}, started 20" in err
            and "two runs into one output would mix their files" in err and "Traceback" not in err)


def _dead_pid() -> int:
    """The pid of a process that has ended (a run killed with SIGKILL leaves such a pid in its lock)."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group (if it still runs) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _stale(out, command: str) -> int:
    """Leave the lock of a killed ``command`` on ``out``; returns its pid."""
    pid = _dead_pid()
    lock_path(out).write_text(json.dumps({"pid": pid, "host": HOST, "started": "2026-01-01 00:00:00",
                                          "command": command, "token": "0" * 16}))
    return pid


def test_sample_into_a_running_sample_is_refused_and_a_killed_one_is_taken_over(tiny_unet, waiting_sampler, capsys):
    tmp = waiting_sampler
    out, hold = tmp / "o", tmp / "hold"
    argv = ["sample", "--model", str(tiny_unet), "--sampler", "waiting-ddim", "--respacing", "ddim2",
            "--num-samples", "8", "--batch-size", "2", "--num-shards", "2", "--shard-index", "0", "--seed", "3",
            "--device", "cpu", "--no-progress"]
    hold.touch()
    first = start_cli(["--plugin", "waiting_ddim", *argv, "--out", str(out)], tmp,
                      {"HOLD_FILE": str(hold), "HOLD_AFTER": "2"})  # commits one chunk of 2, then waits in the next
    parts = out / "samples_8x8x8x1_shard0of2.parts"
    try:
        wait_for(lambda: chunks_done(parts) == 1, first, "a committed chunk")
        # the same run again, resumed, replaced, and another sample count of the same shard (same run_shard0of2.json)
        for extra in ([], ["--resume"], ["--overwrite"], ["--num-samples", "6"]):
            assert main([*argv, "--out", str(out), *extra]) == 1
            assert _named(capsys.readouterr().err, "guidekit sample (shard 0 of 2)", first.pid), extra
        assert chunks_done(parts) == 1 and first.poll() is None  # nothing of the first run was touched
        assert main([*argv, "--out", str(out), "--shard-index", "1"]) == 0  # another shard: its own files, its own lock
    finally:
        _kill(first)
    assert lock_path(out / "run_shard0of2.json").exists()  # left by the killed run
    capsys.readouterr()
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock of guidekit sample (shard 0 of 2) (pid {first.pid} on {HOST}" in err
    assert "resuming: 2/4 samples already done" in err
    assert main([*argv, "--out", str(tmp / "ref")]) == 0  # one uninterrupted run
    name = "samples_8x8x8x1_shard0of2.npz"
    assert (out / name).read_bytes() == (tmp / "ref" / name).read_bytes()
    assert not list(out.glob(".*.lock"))


def test_train_into_a_running_training_is_refused_and_a_killed_one_is_taken_over(tiny_data, tmp_path, capsys):
    out = tmp_path / "clf"
    argv = ["train-classifier", "--data", str(tiny_data), "--flags", CLF8, "--batch-size", "2", "--device", "cpu",
            "--no-progress", "--save-every", "1", "--diffusion-steps", "50"]
    first = start_cli([*argv, "--threads", "1", "--steps", "1000000", "--out", str(out)], tmp_path)
    try:
        wait_for(lambda: (out / "checkpoint.pt").exists(), first, "a checkpoint")
        for extra in (["--steps", "2"], ["--steps", "2", "--overwrite"], ["--steps", "2", "--resume"]):
            assert main([*argv, *extra, "--out", str(out)]) == 1
            assert _named(capsys.readouterr().err, "guidekit train-classifier", first.pid), extra
        assert (out / "checkpoint.pt").exists() and first.poll() is None  # --overwrite removed nothing of it
    finally:
        _kill(first)
    assert lock_path(out).exists()
    assert main([*argv, "--steps", "1", "--overwrite", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock of guidekit train-classifier (pid {first.pid} on {HOST}" in err
    assert json.loads((out / "card.json").read_text())["steps"] == 1 and not lock_path(out).exists()


HOLDER = """
import time
from guidekit.io import output_lock
with output_lock("results.json", "guidekit evaluate"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_evaluate_into_a_held_results_file_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys, monkeypatch):
    import guidekit.metrics

    monkeypatch.setattr(guidekit.metrics, "evaluate",  # the evaluation is not under test
                        lambda *a, **k: dict.fromkeys(guidekit.metrics.METRIC_NAMES, 1.0))
    rng = np.random.default_rng(0)
    ref = write_sample_batch(tmp_path / "ref.npz", rng.integers(0, 256, (20, 16, 16, 1), dtype=np.uint8))
    samples = write_sample_batch(tmp_path / "s.npz", rng.integers(0, 256, (20, 16, 16, 1), dtype=np.uint8))
    out = tmp_path / "results.json"
    argv = ["evaluate", "--ref", str(ref), "--samples", str(samples), "--extractor", "mnist16-oracle", "--k", "2",
            "--no-progress", "--out", str(out)]
    holder = start_writer(HOLDER, tmp_path)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        for extra in ([], ["--overwrite"]):
            assert main([*argv, *extra]) == 2
            assert _named(capsys.readouterr().err, "guidekit evaluate", holder.pid)
        assert not out.exists()
    finally:
        _kill(holder)
    pid = _stale(out, "guidekit evaluate")
    assert main(argv) == 0
    assert f"taking over the stale lock of guidekit evaluate (pid {pid}" in capsys.readouterr().err
    assert json.loads(out.read_text())["fid"] == 1.0 and not lock_path(out).exists()

    # a run that finished while this one waited for the lock: its results are not replaced without --overwrite
    real = lock_module._acquire

    def finished_meanwhile(path, record, target):
        target.write_text("{}")
        real(path, record, target)

    out.unlink()
    monkeypatch.setattr(lock_module, "_acquire", finished_meanwhile)
    assert main(argv) == 2
    assert "exists already; pass --overwrite" in capsys.readouterr().err and out.read_text() == "{}"


def _shard(folder, index):
    name = f"samples_4x16x16x1_shard{index}of2.npz"
    images = np.random.default_rng(index).integers(0, 256, (2, 16, 16, 1), dtype=np.uint8)
    path = write_sample_batch(folder / name, images, np.arange(2))
    (folder / f"run_shard{index}of2.json").write_text(json.dumps(
        {"npz": name, "options": {"seed": 0, "num_shards": 2, "shard_index": index},
         "content": {name: content_record(path)}}))
    return path


MERGE = """
import sys, time
from guidekit.cli import main
until = float(sys.argv[1])
while time.time() < until:  # start together
    time.sleep(0.001)
sys.exit(main(sys.argv[2:]))
"""


def test_merges_started_together_write_one_out_and_name_each_other(tmp_path):
    """Three merge-batches into one OUT, started at the same instant over a stale lock: one takes it over and
    writes OUT and its manifest; the others name that one (or, if it finished first, find OUT there)."""
    a, b = _shard(tmp_path, 0), _shard(tmp_path, 1)
    out = tmp_path / "m.npz"
    dead = _stale(out, "guidekit merge-batches")
    start = time.time() + 4.0  # after the imports of all three
    procs = [subprocess.Popen([sys.executable, "-c", MERGE, str(start), "merge-batches", str(out), str(a), str(b)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [(p.pid, p.wait(timeout=120), p.stderr.read()) for p in procs]
    winners = [(pid, err) for pid, code, err in results if code == 0]
    assert len(winners) == 1, results
    winner, err = winners[0]
    assert f"taking over the stale lock of guidekit merge-batches (pid {dead}" in err
    for pid, code, err in results:
        if pid != winner:
            assert code == 1 and (_named(err, "guidekit merge-batches", winner) or "exists already" in err), err
    assert load_batch(out).num_images == 4 and read_manifest(out)["content"] == content_record(out)
    assert not lock_path(out).exists()


def test_merge_into_a_held_out_is_refused(tmp_path, capsys):
    a, b = _shard(tmp_path, 0), _shard(tmp_path, 1)
    out = tmp_path / "m.npz"
    from guidekit.io import output_lock

    with output_lock(out, "guidekit merge-batches"):
        assert main(["merge-batches", str(out), str(a), str(b)]) == 1
        assert _named(capsys.readouterr().err, "guidekit merge-batches", os.getpid())
    assert not out.exists()


def test_a_lock_of_another_host_is_not_taken_over_and_an_empty_one_is_after_a_grace_time(tmp_path, capsys,
                                                                                          monkeypatch):
    a, b = _shard(tmp_path, 0), _shard(tmp_path, 1)
    out = tmp_path / "m.npz"
    lock = lock_path(out)
    # another host: its pid means nothing here, so only its user can say it is gone
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere", "started": "2026-01-01 00:00:00",
                                "command": "guidekit merge-batches", "token": "1" * 16}))
    assert main(["merge-batches", str(out), str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "is being written by guidekit merge-batches (pid " in err and "on elsewhere" in err
    assert f"delete {lock}" in err and not out.exists()
    # empty: a writer killed between creating the file and writing its record (after the grace time)
    lock.write_text("")
    monkeypatch.setattr(lock_module, "UNREADABLE_GRACE_S", 0.2)
    assert main(["merge-batches", str(out), str(a), str(b)]) == 0
    assert "taking over the stale lock of a run killed while creating it" in capsys.readouterr().err
    assert out.exists() and not lock.exists()
