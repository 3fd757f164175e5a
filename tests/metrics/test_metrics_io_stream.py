"""guidekit.io streaming: SampleBatchWriter (bounded memory, atomic), merge_sample_batches, ``guidekit merge-batches``."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from guidekit.cli import main
from guidekit.errors import InvalidParameterError
from guidekit.io import (
    BatchFileError,
    SampleBatchWriter,
    load_batch,
    merge_sample_batches,
    sample_batch_name,
    write_sample_batch,
)


def _batch(n: int, seed: int = 0, hwc: tuple[int, int, int] = (5, 6, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *hwc), dtype=np.uint8), rng.integers(0, 1000, size=n)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writer_reads_back_like_np_savez(tmp_path: Path):
    images, labels = _batch(23)
    np.savez(tmp_path / "ref.npz", arr_0=images, arr_1=labels.astype(np.int64))
    with SampleBatchWriter(tmp_path / "out.npz", 23, (5, 6, 3)) as writer:
        for lo, hi in ((0, 4), (4, 4), (4, 15), (15, 16), (16, 23)):  # uneven chunks, one empty
            writer.add(images[lo:hi], torch.from_numpy(labels[lo:hi]))
    with np.load(tmp_path / "ref.npz") as ref, np.load(tmp_path / "out.npz", allow_pickle=False) as out:
        assert out.files == ref.files == ["arr_0", "arr_1"]
        for key in ref.files:
            assert out[key].dtype == ref[key].dtype and out[key].shape == ref[key].shape
            assert np.array_equal(out[key], ref[key])
    batch = load_batch(tmp_path / "out.npz")
    assert isinstance(batch.images(), np.memmap) and np.array_equal(batch.images(), images)
    assert _leftovers(tmp_path) == ["out.npz", "ref.npz"]  # no temporary file left behind


def test_writer_without_labels_and_from_model_output(tmp_path: Path):
    x = torch.rand(3, 3, 4, 4) * 2 - 1
    with SampleBatchWriter(tmp_path / "out.npz", 3, (4, 4, 3)) as writer:
        writer.add(x[:1])
        writer.add(x[1:])
    write_sample_batch(tmp_path / "ref.npz", x)
    with np.load(tmp_path / "ref.npz") as ref, np.load(tmp_path / "out.npz") as out:
        assert out.files == ["arr_0"] and np.array_equal(out["arr_0"], ref["arr_0"])
    with SampleBatchWriter(tmp_path / "empty.npz", 0, (4, 4, 3)):
        pass
    assert load_batch(tmp_path / "empty.npz").num_images == 0


def test_writer_memory_is_bounded_by_one_chunk(tmp_path: Path):
    chunk_shape, chunks = (16, 64, 64, 3), 48  # 192 KiB a chunk, 9 MiB in all
    chunk_bytes = int(np.prod(chunk_shape))
    tracemalloc.start()
    try:
        with SampleBatchWriter(tmp_path / "big.npz", chunk_shape[0] * chunks, chunk_shape[1:]) as writer:
            for i in range(chunks):
                writer.add(np.full(chunk_shape, i % 251, np.uint8), np.full(chunk_shape[0], i))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * chunk_bytes, f"peak {peak} bytes while writing {chunks} chunks of {chunk_bytes}"
    batch = load_batch(tmp_path / "big.npz")
    assert batch.num_images == chunk_shape[0] * chunks
    assert batch.images()[-1, 0, 0, 0] == (chunks - 1) % 251 and batch.labels()[-1] == chunks - 1


def test_writer_rejects_wrong_counts_and_leaves_no_file(tmp_path: Path):
    images, labels = _batch(4)
    path = tmp_path / "out.npz"
    with pytest.raises(InvalidParameterError, match="5 images added but 4 were declared"):
        with SampleBatchWriter(path, 4, (5, 6, 3)) as writer:
            writer.add(images, labels)
            writer.add(images[:1], labels[:1])
    with pytest.raises(InvalidParameterError, match="3 images added but 4 were declared"):
        with SampleBatchWriter(path, 4, (5, 6, 3)) as writer:
            writer.add(images[:3], labels[:3])
    with pytest.raises(RuntimeError, match="sampler died"):
        with SampleBatchWriter(path, 4, (5, 6, 3)) as writer:
            writer.add(images[:2], labels[:2])
            raise RuntimeError("sampler died")
    assert _leftovers(tmp_path) == []  # nothing half-written, no temporary files


def test_writer_rejects_bad_input(tmp_path: Path):
    images, labels = _batch(4)
    with pytest.raises(InvalidParameterError, match="with` block"):
        SampleBatchWriter(tmp_path / "a.npz", 4, (5, 6, 3)).add(images)
    with pytest.raises(InvalidParameterError, match="image_shape_hwc"):
        SampleBatchWriter(tmp_path / "a.npz", 4, (5, 6))
    with SampleBatchWriter(tmp_path / "a.npz", 4, (5, 6, 3)) as writer:
        with pytest.raises(InvalidParameterError, match=r"declared as \(5, 6, 3\)"):
            writer.add(images[:, :4])
        with pytest.raises(InvalidParameterError, match="labels must be 2 integers"):
            writer.add(images[:2], labels[:3])
        writer.add(images[:2], labels[:2])
        with pytest.raises(InvalidParameterError, match="every add"):
            writer.add(images[2:])
        writer.add(images[2:], labels[2:])


def test_sample_batch_name():
    assert sample_batch_name(50000, (256, 256, 3)) == "samples_50000x256x256x3.npz"
    assert sample_batch_name(50000, (256, 256, 3), 3, 8) == "samples_50000x256x256x3_shard3of8.npz"


def test_merge_equals_concatenation(tmp_path: Path):
    parts = [_batch(n, seed) for seed, n in enumerate((5, 0, 9, 3))]
    paths = []
    for i, (images, labels) in enumerate(parts):
        paths.append(write_sample_batch(tmp_path / f"part{i}.npz", images, labels if len(images) else None))
    out = merge_sample_batches(tmp_path / "merged.npz", paths, chunk_size=2)
    with np.load(out, allow_pickle=False) as data:
        assert np.array_equal(data["arr_0"], np.concatenate([im for im, _ in parts]))
        assert np.array_equal(data["arr_1"], np.concatenate([lab for _, lab in parts]))
        assert data["arr_1"].dtype == np.int64


def test_merge_puts_shard_files_in_shard_order(tmp_path: Path):
    parts = {i: _batch(2, seed=i) for i in range(11)}
    paths = [write_sample_batch(tmp_path / sample_batch_name(22, (5, 6, 3), i, 11), *parts[i]) for i in parts]
    shuffled = sorted(paths, key=lambda p: p.name)  # what a shell glob gives: shard10 before shard2
    assert main(["merge-batches", str(tmp_path / "all.npz"), *map(str, shuffled)]) == 0
    with np.load(tmp_path / "all.npz") as data:
        assert np.array_equal(data["arr_0"], np.concatenate([parts[i][0] for i in range(11)]))
        assert np.array_equal(data["arr_1"], np.concatenate([parts[i][1] for i in range(11)]))
    with pytest.raises(BatchFileError, match=r"shards \[3\] of 11 are missing"):
        merge_sample_batches(tmp_path / "x.npz", paths[:3] + paths[4:])
    with pytest.raises(BatchFileError, match="repeat a shard"):
        merge_sample_batches(tmp_path / "x.npz", paths + paths[:1])


def test_merge_rejects_mismatched_batches(tmp_path: Path, capsys):
    a = write_sample_batch(tmp_path / "a.npz", *_batch(3))
    b = write_sample_batch(tmp_path / "b.npz", *_batch(3, hwc=(5, 6, 1)))
    c = write_sample_batch(tmp_path / "c.npz", _batch(3)[0])
    with pytest.raises(BatchFileError, match=r"\(5, 6, 1\) images but .* holds \(5, 6, 3\)"):
        merge_sample_batches(tmp_path / "x.npz", [a, b])
    with pytest.raises(BatchFileError, match="no 'arr_1' labels"):
        merge_sample_batches(tmp_path / "x.npz", [a, c])
    assert main(["merge-batches", str(tmp_path / "x.npz"), str(a), str(tmp_path / "missing.npz")]) == 1
    assert "missing.npz" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
