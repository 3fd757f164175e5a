"""Resume chunks of ``guidekit sample`` (ChunkedSampleBatch): damaged, truncated, a full disk, code that changed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import guidekit as gk
from guidekit.errors import IdentityError, WriteError
from guidekit.identity import components_identity
from guidekit.registry import default_registry
from guidekit.resume import ChunkedSampleBatch, ResumeError

from .conftest import flip_byte, truncate

HWC = (16, 16, 1)
N, BATCH = 10, 4


def images(start: int, count: int) -> np.ndarray:
    """Sample i is a function of i alone, as guidekit's per-sample seeds make it."""
    return np.stack([np.random.default_rng(i).integers(0, 256, HWC, dtype=np.uint8) for i in range(start, start + count)])


def run(out, mode="new", stop_after=None, options=None):
    """Sample (fake) chunks into ``out`` as ``guidekit sample`` does; returns the batch object."""
    batch = ChunkedSampleBatch(out / "samples.npz", 0, N, HWC, mode=mode, record=out / "run.json")
    if batch.prepare(options or {"seed": 0}):
        return batch
    for i, (start, count) in enumerate(batch.pending(BATCH)):
        if stop_after is not None and i >= stop_after:
            return batch
        batch.commit(start, images(start, count), np.arange(start, start + count))
    batch.finish()
    batch.write_record({"npz": "samples.npz"})
    batch.cleanup()
    return batch


@pytest.fixture
def reference(tmp_path):
    run(tmp_path / "ref")
    return (tmp_path / "ref" / "samples.npz").read_bytes()


@pytest.mark.parametrize("damage", [lambda p: flip_byte(p, p.stat().st_size // 2), lambda p: truncate(p, 100),
                                    lambda p: flip_byte(p, -30)])
def test_a_damaged_chunk_is_redone_alone(tmp_path, reference, damage):
    out = tmp_path / "o"
    run(out, stop_after=2)  # a killed run: chunks [0, 4) and [4, 8) committed
    chunks = sorted((out / "samples.parts").glob("chunk_*.npz"))
    damage(chunks[0])
    with pytest.warns(UserWarning, match="discarding a damaged chunk"):
        batch = ChunkedSampleBatch(out / "samples.npz", 0, N, HWC, mode="resume", record=out / "run.json")
        batch.prepare({"seed": 0})
    assert list(batch.pending(BATCH)) == [(0, 4), (8, 2)]  # the damaged one and the one never sampled
    assert not (out / "samples.parts" / chunks[0].name).exists()  # discarded, not trusted again
    run(out, mode="resume")
    assert (out / "samples.npz").read_bytes() == reference


def test_a_chunk_damaged_before_the_final_merge_is_named_and_redone(tmp_path, reference):
    out = tmp_path / "o"
    batch = ChunkedSampleBatch(out / "samples.npz", 0, N, HWC, record=out / "run.json")
    batch.prepare({"seed": 0})
    for start, count in batch.pending(BATCH):
        batch.commit(start, images(start, count), np.arange(start, start + count))
    flip_byte(sorted((out / "samples.parts").glob("chunk_*.npz"))[1], 200)
    with pytest.raises(ResumeError, match=r"damaged on disk .*run the same command with --resume to sample its 4 "):
        batch.finish()
    assert not (out / "samples.npz").exists()
    resumed = run(out, mode="resume")
    assert (out / "samples.npz").read_bytes() == reference and resumed.content["sha256"]


def test_a_finished_batch_damaged_afterwards_is_refused_on_resume(tmp_path):
    out = tmp_path / "o"
    run(out)
    record = json.loads((out / "run.json").read_text())
    assert set(record["content"]) == {"samples.npz"} and record["options"] == {"seed": 0}
    flip_byte(out / "samples.npz", 500)
    with pytest.raises(IdentityError, match="pass --overwrite to sample it again"):
        run(out, mode="resume")
    run(out, mode="overwrite")  # the way out
    assert ChunkedSampleBatch(out / "samples.npz", 0, N, HWC, mode="resume", record=out / "run.json").prepare({"seed": 0})


def test_disk_full_while_committing_keeps_the_chunks_before(tmp_path, reference, disk_full):
    out = tmp_path / "o"
    batch = ChunkedSampleBatch(out / "samples.npz", 0, N, HWC, record=out / "run.json")
    batch.prepare({"seed": 0})
    pending = list(batch.pending(BATCH))
    batch.commit(*pending[0][:1], images(0, 4), np.arange(4))
    disk_full(1)
    with pytest.raises(WriteError, match=r"no space left on the device.*the 4 samples committed before are kept.*--resume"):
        batch.commit(4, images(4, 4), np.arange(4, 8))
    disk_full(10**9)  # space again
    assert not list((out / "samples.parts").glob(".*.tmp"))
    run(out, mode="resume")
    assert (out / "samples.npz").read_bytes() == reference


def test_resume_after_a_plugin_shadows_a_component_is_refused(tmp_path):
    """A run's options hold the provenance of its components; a shadowing registration changes it."""
    out = tmp_path / "o"
    run(out, stop_after=1, options={"seed": 0, **components_identity([("scaler", "constant")])})

    @gk.register_scaler("constant", replace=True)
    def shadow(gamma: float = 1.0):
        return lambda state: state.t * 0 + gamma

    try:
        with pytest.raises(ResumeError) as info:
            run(out, mode="resume", options={"seed": 0, **components_identity([("scaler", "constant")])})
    finally:
        default_registry().remove("scaler", "constant")
    message = str(info.value)
    assert "component scaler 'constant': was guidekit (guidekit.scalers.constant" in message
    assert "(replace=True)" in message and "one output would mix two implementations" in message
