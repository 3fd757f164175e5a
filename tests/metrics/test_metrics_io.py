"""guidekit.io: uint8 conversion, ADM-layout batches, chunked reading, atomic writes, PNG grids."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from guidekit.errors import InvalidParameterError
from guidekit.io import (
    BatchFileError,
    atomic_write,
    load_batch,
    make_grid,
    save_grid,
    to_uint8,
    write_npz,
    write_reference_batch,
    write_sample_batch,
)


def decode_png(data: bytes) -> np.ndarray:
    """A minimal PNG reader for 8-bit, non-interlaced images with filter type 0 (what save_grid writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0)
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * channels)
    assert (rows[:, 0] == 0).all()  # filter type "None" on every row
    return rows[:, 1:].reshape(h, w, channels)


def test_to_uint8_truncates_like_the_reference_and_goes_nhwc():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.9 / 127.5 - 1.0, 1.0, 2.0]).reshape(1, 1, 2, 3)
    out = to_uint8(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 2, 3, 1)
    expected = ((x + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(out, expected)
    assert out.flatten().tolist() == [0, 0, 127, 1, 255, 255]  # 127.5 → 127 and 1.9 → 1: truncation
    assert to_uint8(torch.zeros(3, 4, 5)).shape == (4, 5, 3)
    with pytest.raises(InvalidParameterError, match="floating-point"):
        to_uint8(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_sample_batch_round_trip(tmp_path: Path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(37, 5, 6, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, size=37)
    path = write_sample_batch(tmp_path / "samples.npz", images, torch.from_numpy(labels))
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["arr_0", "arr_1"]
        assert data["arr_0"].dtype == np.uint8 and np.array_equal(data["arr_0"], images)
        assert data["arr_1"].dtype == np.int64 and np.array_equal(data["arr_1"], labels)
    batch = load_batch(path)
    assert batch.has_images and batch.num_images == 37 and batch.mu is None
    assert isinstance(batch.images(), np.memmap)  # uncompressed: read in place, never loaded whole
    chunks = list(batch.iter_images(10))
    assert [len(c) for c in chunks] == [10, 10, 10, 7]
    assert np.array_equal(np.concatenate(chunks), images)
    assert np.array_equal(batch.labels(), labels)


def test_float_model_output_is_converted(tmp_path: Path):
    x = torch.rand(4, 3, 6, 6) * 2 - 1
    path = write_sample_batch(tmp_path / "s.npz", x)
    assert np.array_equal(load_batch(path).images(), to_uint8(x).numpy())


def test_compressed_batches_are_streamed(tmp_path: Path):
    images = np.random.default_rng(1).integers(0, 256, size=(23, 4, 4, 1), dtype=np.uint8)
    path = tmp_path / "c.npz"
    np.savez_compressed(path, arr_0=images)
    chunks = list(load_batch(path).iter_images(8))
    assert [len(c) for c in chunks] == [8, 8, 7]
    assert np.array_equal(np.concatenate(chunks), images)


def test_reference_batch_with_precomputed_statistics(tmp_path: Path):
    mu, sigma = np.arange(3.0), np.eye(3)
    path = write_reference_batch(tmp_path / "ref.npz", mu=mu, sigma=sigma, mu_s=mu[:2], sigma_s=np.eye(2))
    ref = load_batch(path)
    assert not ref.has_images and ref.num_images == 0
    assert np.array_equal(ref.mu, mu) and np.array_equal(ref.sigma, sigma) and ref.sigma_s.shape == (2, 2)
    with pytest.raises(BatchFileError, match="no 'arr_0' images"):
        next(ref.iter_images())


def test_missing_and_invalid_files_name_the_file_and_the_keys(tmp_path: Path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(BatchFileError, match="nope.npz.*does not exist.*arr_0.*mu.*sigma"):
        load_batch(missing)
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(BatchFileError, match="text.npz.*not a valid .npz.*arr_0"):
        load_batch(text)
    other = tmp_path / "other.npz"
    np.savez(other, images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(BatchFileError, match=r"other.npz.*\['images'\].*arr_0"):
        load_batch(other)
    bad_dtype = tmp_path / "float.npz"
    np.savez(bad_dtype, arr_0=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(BatchFileError, match="must be uint8"):
        load_batch(bad_dtype)
    half = tmp_path / "half.npz"
    np.savez(half, mu=np.zeros(3))
    with pytest.raises(BatchFileError, match="'mu' and 'sigma' go together"):
        load_batch(half)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, arr_0=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BatchFileError, match="refusing to unpickle"):
        load_batch(pickled)


def test_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "out" / "samples.npz"
    write_sample_batch(path, np.zeros((2, 3, 3, 3), np.uint8))
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        write_sample_batch(path, np.ones((2, 3, 3, 3), np.uint8))
    assert path.read_bytes() == before  # the old file is untouched
    assert os.listdir(path.parent) == ["samples.npz"]  # and no temporary file is left behind

    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "new.bin") as fh:
            fh.write(b"x")
            raise RuntimeError("interrupted")
    assert not (tmp_path / "new.bin").exists()


def test_write_validation():
    with pytest.raises(InvalidParameterError, match="one per image"):
        write_sample_batch("unused.npz", np.zeros((2, 3, 3, 3), np.uint8), labels=[1, 2, 3])
    with pytest.raises(InvalidParameterError, match="uint8 N×H×W×C"):
        write_sample_batch("unused.npz", np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(InvalidParameterError, match="dtype int32"):
        write_sample_batch("unused.npz", np.zeros((2, 3, 3, 3), np.int32))
    with pytest.raises(InvalidParameterError, match="object"):
        write_npz("unused.npz", a=np.array([None], dtype=object))


@pytest.mark.parametrize("channels", [1, 3])
def test_png_grid_is_valid_and_decodes_to_the_tiles(tmp_path: Path, channels: int):
    rng = np.random.default_rng(channels)
    images = rng.integers(0, 256, size=(5, 4, 6, channels), dtype=np.uint8)
    path = save_grid(images, tmp_path / "grid.png", nrow=3, padding=1, scale=1)
    pixels = decode_png(path.read_bytes())
    assert pixels.shape == (2 * (4 + 1) + 1, 3 * (6 + 1) + 1, channels)
    assert np.array_equal(pixels, make_grid(images, nrow=3, padding=1))
    assert np.array_equal(pixels[1:5, 1:7], images[0])  # first tile
    assert np.array_equal(pixels[6:10, 8:14], images[4])  # row 1, column 1
    assert (pixels[6:10, 15:21] == 0).all()  # the missing sixth tile stays padding
    try:  # a second, independent decoder when the optional plotting extra is installed
        import matplotlib.image as mpimg
    except ImportError:
        return
    decoded = mpimg.imread(path)
    assert np.allclose(decoded.reshape(pixels.shape) * 255, pixels, atol=0.5)


def test_png_grid_from_model_output_and_default_layout(tmp_path: Path):
    x = torch.rand(7, 3, 5, 5) * 2 - 1
    path = save_grid(x, tmp_path / "g.png", scale=1)
    pixels = decode_png(path.read_bytes())
    assert pixels.shape == (2 + 3 * 7, 2 + 3 * 7, 3)  # nrow = ceil(sqrt(7)) = 3, padding 2
    assert np.array_equal(pixels[2:7, 2:7], to_uint8(x)[0].numpy())
    one = decode_png(save_grid(torch.zeros(1, 8, 8), tmp_path / "one.png", scale=1).read_bytes())  # one CHW image
    assert one.shape == (12, 12, 1) and (one[2:10, 2:10] == 127).all()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_png_grid_of_small_images_is_enlarged_to_a_readable_width(tmp_path: Path):
    images = torch.rand(16, 1, 16, 16) * 2 - 1
    pixels = decode_png(save_grid(images, tmp_path / "g.png").read_bytes())
    assert pixels.shape == (4 * (64 + 2) + 2, 4 * (64 + 2) + 2, 1)  # 4x: the smallest factor reaching 256 px
    tile = to_uint8(images)[0].numpy()
    assert np.array_equal(pixels[2:66, 2:66], tile.repeat(4, 0).repeat(4, 1))  # nearest neighbour
    native = decode_png(save_grid(images, tmp_path / "n.png", scale=1).read_bytes())
    assert native.shape == (74, 74, 1)
    big = decode_png(save_grid(torch.zeros(2, 3, 200, 200), tmp_path / "b.png").read_bytes())
    assert big.shape[1] == 2 * 202 + 2  # already wider than 256 px: native size
    three = decode_png(save_grid(np.zeros((5, 4, 6, 1), np.uint8), tmp_path / "t.png", nrow=5, padding=1,
                                 scale=3).read_bytes())
    assert three.shape == (12 + 2, 5 * 19 + 1, 1)  # scale=3 enlarges the images, not the padding


def test_png_grid_old_argument_order_still_works_with_a_warning(tmp_path: Path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 4, 4, 3), dtype=np.uint8)
    with pytest.warns(DeprecationWarning, match=r"save_grid\(x, path\)"):
        old = save_grid(tmp_path / "old.png", images)
    new = save_grid(images, tmp_path / "new.png")
    assert old.read_bytes() == new.read_bytes()
    with pytest.warns(DeprecationWarning):
        save_grid(str(tmp_path / "old2.png"), images)


@pytest.mark.parametrize(("args", "match"), [
    ((np.zeros((1, 4, 4, 3), np.uint8), 3), "path must be a str or os.PathLike"),
    (("a.png", "b.png"), "x must be images"),
    ((np.zeros((1, 4, 4, 3), np.uint8), "g.png"), None),
])
def test_png_grid_argument_checks(tmp_path: Path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    if match is None:
        assert save_grid(*args).is_file()
        return
    with pytest.raises(InvalidParameterError, match=match):
        save_grid(*args)
    with pytest.raises(InvalidParameterError, match="scale must be a positive integer"):
        save_grid(np.zeros((1, 4, 4, 3), np.uint8), "s.png", scale=0)
