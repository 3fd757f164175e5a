"""Damaged, truncated and replaced batches; a full disk while writing or merging them (issue 18)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from guidekit.cli import main
from guidekit.errors import IdentityError, WriteError
from guidekit.identity import content_record, file_sha256, read_manifest
from guidekit.io import BatchFileError, load_batch, merge_sample_batches, write_sample_batch

from .conftest import flip_byte, truncate

RNG = np.random.default_rng(0)


def _images(n: int, hw: int = 16, c: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, hw, hw, c), dtype=np.uint8)


@pytest.mark.parametrize("count", [3, 400])  # a member read whole with its header, and a memory-mapped one
def test_a_flipped_image_byte_is_a_named_error_for_every_reader(tmp_path, count):
    path = write_sample_batch(tmp_path / "s.npz", _images(count), np.arange(count))
    flip_byte(path, 300 if count == 3 else path.stat().st_size // 2)
    for read in (lambda b: b.images(), lambda b: list(b.iter_images(64))):
        with pytest.raises(BatchFileError, match=r"array 'arr_0' is damaged .*regenerate it"):
            read(load_batch(path))


def test_a_flipped_label_byte_and_a_compressed_member(tmp_path):
    path = write_sample_batch(tmp_path / "s.npz", _images(400), np.arange(400))
    flip_byte(path, path.read_bytes().rindex(np.arange(400).astype(np.int64).tobytes()[800:808]))
    with pytest.raises(BatchFileError, match="array 'arr_1' is damaged"):
        load_batch(path).labels()
    packed = tmp_path / "c.npz"
    np.savez_compressed(packed, arr_0=_images(400))
    flip_byte(packed, packed.stat().st_size // 2)
    with pytest.raises(BatchFileError, match="is damaged"):
        list(load_batch(packed).iter_images(64))


def test_a_truncated_batch_is_a_named_error(tmp_path):
    path = write_sample_batch(tmp_path / "s.npz", _images(400), np.arange(400))
    truncate(path, path.stat().st_size // 2)
    with pytest.raises(BatchFileError, match="not a valid .npz"):
        load_batch(path)


def test_evaluate_refuses_a_damaged_batch_and_a_replaced_one(tmp_path, capsys):
    ref = write_sample_batch(tmp_path / "ref.npz", _images(400, seed=1))
    samples = write_sample_batch(tmp_path / "s.npz", _images(400), np.arange(400) % 10)
    args = ["evaluate", "--ref", str(ref), "--samples", str(samples), "--extractor", "mnist16-oracle", "--no-progress"]
    flip_byte(samples, samples.stat().st_size // 2)
    assert main(args) == 2
    assert "array 'arr_0' is damaged" in capsys.readouterr().err
    # a batch with a run record, replaced afterwards by another valid batch of the same size
    write_sample_batch(samples, _images(400), np.arange(400) % 10)
    (tmp_path / "run.json").write_text(json.dumps({"content": {"s.npz": content_record(samples)}}))
    write_sample_batch(samples, _images(400, seed=5), np.arange(400) % 10)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "s.npz" in err and "was damaged or replaced after it was written" in err and "run.json" in err


def test_evaluate_out_on_a_full_disk_names_the_file_after_printing_the_metrics(tmp_path, capsys, disk_full,
                                                                               monkeypatch):
    import guidekit.metrics

    metrics = dict.fromkeys(guidekit.metrics.METRIC_NAMES, 1.0)
    monkeypatch.setattr(guidekit.metrics, "evaluate", lambda *a, **k: metrics)  # the evaluation is not under test
    ref = write_sample_batch(tmp_path / "ref.npz", _images(40, seed=1))
    samples = write_sample_batch(tmp_path / "s.npz", _images(40))
    out = tmp_path / "results.json"
    disk_full(1)
    assert main(["evaluate", "--ref", str(ref), "--samples", str(samples), "--extractor", "mnist16-oracle",
                 "--no-progress", "--out", str(out), "--k", "2"]) == 1
    captured = capsys.readouterr()
    assert "fid" in captured.out  # the metrics are on stdout before the write fails
    assert f"cannot write {str(out)!r}: no space left on the device" in captured.err
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def _shard(folder, index, gamma, images):
    folder.mkdir(exist_ok=True)
    name = f"samples_4x16x16x1_shard{index}of2.npz"
    path = write_sample_batch(folder / name, images, np.arange(len(images)))
    options = {"gamma": gamma, "seed": 0, "num_shards": 2, "shard_index": index}
    (folder / f"run_shard{index}of2.json").write_text(json.dumps(
        {"npz": name, "options": options, "content": {name: content_record(path)}}))
    return path


def test_merge_refuses_shards_of_different_runs_and_damaged_shards(tmp_path, capsys):
    a = _shard(tmp_path / "a", 0, 1.0, _images(2))
    b = _shard(tmp_path / "b", 1, 3.0, _images(2, seed=1))  # another guidance scale
    assert main(["merge-batches", str(tmp_path / "m.npz"), str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "come from runs with different options (gamma: was 1.0, now 3.0)" in err
    assert not (tmp_path / "m.npz").exists()
    good = _shard(tmp_path / "b", 1, 1.0, _images(2, seed=1))
    flip_byte(good, good.stat().st_size // 2)
    assert main(["merge-batches", str(tmp_path / "m.npz"), str(a), str(good)]) == 1
    assert "sample that shard again" in capsys.readouterr().err
    # one shard with a record, one without
    bare = write_sample_batch(tmp_path / "c" / "samples_4x16x16x1_shard1of2.npz", _images(2, seed=1), np.arange(2))
    with pytest.raises(IdentityError, match="have no run record"):
        merge_sample_batches(tmp_path / "m.npz", [a, bare])


def test_merge_of_one_run_records_a_manifest(tmp_path):
    a = _shard(tmp_path / "s", 0, 1.0, _images(2))
    b = _shard(tmp_path / "s", 1, 1.0, _images(2, seed=1))
    out = merge_sample_batches(tmp_path / "m.npz", [b, a])
    manifest = read_manifest(out)
    assert manifest["content"]["sha256"] == file_sha256(out)
    assert [s["file"] for s in manifest["inputs"]["shards"]] == [a.name, b.name]
    assert manifest["inputs"]["options"] == {"gamma": 1.0, "seed": 0, "num_shards": 2}


def test_merge_on_a_full_disk_names_the_output_and_keeps_the_inputs(tmp_path, capsys, disk_full):
    a = write_sample_batch(tmp_path / "a.npz", _images(3), np.arange(3))
    b = write_sample_batch(tmp_path / "b.npz", _images(2, seed=1), np.arange(2))
    before = a.read_bytes(), b.read_bytes()
    disk_full(2)
    out = tmp_path / "m.npz"
    assert main(["merge-batches", str(out), str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {str(out)!r}: no space left on the device" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".*.tmp")) and (a.read_bytes(), b.read_bytes()) == before
    with pytest.raises(WriteError) as info:
        write_sample_batch(tmp_path / "x.npz", _images(1))
    assert info.value.errno == 28 and info.value.filename == str(tmp_path / "x.npz")
