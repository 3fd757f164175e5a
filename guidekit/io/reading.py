"""Reading sample and reference batches (ADM evaluator layout ``.npz``).

Reading never unpickles (``allow_pickle=False``) and never loads all images at once: an
uncompressed member (``np.savez``) is memory-mapped, a compressed one is streamed in chunks.

Every member is checked against the CRC-32 its zip entry records before its data is used: a
memory-mapped member once per file version (path, size, modification time), in one streaming pass
before mapping (see ``benchmarks/npz_crc.py`` for the cost); a streamed or small member as it is read.
A mismatch is a :class:`BatchFileError` naming the file and the member.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from guidekit.errors import GuidekitError, InvalidParameterError

IMAGE_KEY = "arr_0"
LABEL_KEY = "arr_1"
STAT_KEYS = ("mu", "sigma", "mu_s", "sigma_s")
EXPECTED_KEYS = "'arr_0' (uint8 images N×H×W×C) and/or precomputed 'mu', 'sigma' (and 'mu_s', 'sigma_s')"


class BatchFileError(GuidekitError, ValueError):
    """A batch file is missing, unreadable, damaged (a CRC mismatch), or lacks the expected arrays."""


#: (resolved path, size, mtime_ns, inode, member) of memory-mapped members whose CRC-32 was checked
_CRC_CHECKED: set[tuple[str, int, int, int, str]] = set()


def _damaged(path: Path, key: str, detail: str) -> BatchFileError:
    return BatchFileError(f"{str(path)!r}: array {key!r} is damaged ({detail}): the file changed after it was "
                          "written (a disk or copy error, or an edit); regenerate it, or restore it from a copy")


def _check_stats(where: str, arrays: dict[str, np.ndarray]) -> None:
    for m_key, s_key in (("mu", "sigma"), ("mu_s", "sigma_s")):
        m, s = arrays.get(m_key), arrays.get(s_key)
        if (m is None) != (s is None):
            raise BatchFileError(f"{where}: has {m_key if m is not None else s_key!r} but not its partner; "
                                 f"'{m_key}' and '{s_key}' go together")
        if m is not None and (m.ndim != 1 or s.shape != (m.shape[0], m.shape[0])):
            raise BatchFileError(
                f"{where}: '{m_key}' must have shape (D,) and '{s_key}' (D, D); got {m.shape} and {s.shape}"
            )


class NpzBatch:
    """A lazily read ADM-layout batch. Images are read in chunks with :meth:`iter_images`."""

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidParameterError(f"a batch is read from an .npz path, got {type(path).__name__}; write arrays "
                                        "with guidekit.io.write_sample_batch / write_reference_batch first")
        self.path = Path(path)
        self.verify = bool(verify)
        if self.path.is_dir():
            raise BatchFileError(f"batch path {str(self.path)!r} is a folder; give the .npz file inside it")
        if not self.path.is_file():
            raise BatchFileError(f"batch file {str(self.path)!r} does not exist; expected an .npz with {EXPECTED_KEYS}")
        try:
            with zipfile.ZipFile(self.path) as zf:
                members = {info.filename: info for info in zf.infolist()}
        except (zipfile.BadZipFile, OSError) as exc:
            raise BatchFileError(
                f"{str(self.path)!r} is not a valid .npz file ({exc}); expected an .npz with {EXPECTED_KEYS}"
            ) from exc
        self.keys = sorted(name[:-4] for name in members if name.endswith(".npy"))
        self._members = members
        self.image_shape: tuple[int, ...] | None = None
        self.image_dtype: np.dtype | None = None
        if IMAGE_KEY in self.keys:
            shape, fortran, dtype = self._header(IMAGE_KEY)
            if dtype != np.uint8 or len(shape) != 4 or shape[-1] not in (1, 3, 4):
                raise BatchFileError(
                    f"{str(self.path)!r}: 'arr_0' must be uint8 images N×H×W×C with C in (1, 3, 4), "
                    f"got dtype {dtype} and shape {shape}"
                )
            self.image_shape, self.image_dtype = tuple(shape), dtype
        stats = {k: self._load_small(k) for k in STAT_KEYS if k in self.keys}
        _check_stats(repr(str(self.path)), stats)
        self.mu, self.sigma = stats.get("mu"), stats.get("sigma")
        self.mu_s, self.sigma_s = stats.get("mu_s"), stats.get("sigma_s")
        if self.image_shape is None and self.mu is None:
            raise BatchFileError(
                f"{str(self.path)!r} has arrays {self.keys} but needs {EXPECTED_KEYS}"
            )

    # -- metadata -----------------------------------------------------------------------------
    @property
    def has_images(self) -> bool:
        return self.image_shape is not None

    @property
    def num_images(self) -> int:
        return 0 if self.image_shape is None else int(self.image_shape[0])

    def _open_member(self, key: str) -> tuple[zipfile.ZipFile, IO[bytes]]:
        zf = zipfile.ZipFile(self.path)
        return zf, zf.open(key + ".npy")

    def _read_header(self, fh: IO[bytes], key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except ValueError as exc:
            raise BatchFileError(f"{str(self.path)!r}: array {key!r} is not a valid .npy member ({exc})") from exc
        if dtype.hasobject:
            raise BatchFileError(f"{str(self.path)!r}: array {key!r} holds Python objects; refusing to unpickle it")
        return tuple(shape), bool(fortran), dtype

    def _header(self, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        zf, fh = self._open_member(key)
        try:
            with zf, fh:
                return self._read_header(fh, key)
        except zipfile.BadZipFile as exc:  # a small member is read whole, and checked, with its header
            raise _damaged(self.path, key, str(exc)) from None

    def _load_small(self, key: str) -> np.ndarray:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return np.asarray(data[key])  # zipfile checks the CRC-32 as it reads the member
        except zipfile.BadZipFile as exc:
            raise _damaged(self.path, key, str(exc)) from None
        except (ValueError, EOFError, OSError) as exc:
            raise BatchFileError(f"{str(self.path)!r}: cannot read array {key!r} ({exc})") from exc

    def labels(self) -> np.ndarray | None:
        """``arr_1`` (int64 labels) if present."""
        if LABEL_KEY not in self.keys:
            return None
        labels = self._load_small(LABEL_KEY)
        if labels.dtype.kind not in "iub" and (labels.dtype.kind != "f" or not np.array_equal(labels, np.round(labels))):
            raise BatchFileError(f"{str(self.path)!r}: 'arr_1' holds non-integer labels (dtype {labels.dtype}); "
                                 "labels must be class indices 0..K-1")
        return labels.astype(np.int64)

    # -- images -------------------------------------------------------------------------------
    def _memmap(self, key: str) -> np.ndarray | None:
        """Memory-map an uncompressed member in place; None if it is compressed."""
        info = self._members[key + ".npy"]
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            return None
        with open(self.path, "rb") as raw:
            raw.seek(info.header_offset)
            local = raw.read(30)
            if local[:4] != b"PK\x03\x04":
                return None
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            raw.seek(start)
            shape, fortran, dtype = self._read_header(raw, key)
            offset = raw.tell()
            if self.verify:
                self._check_crc(raw, key, start, info)
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")

    def _check_crc(self, raw: IO[bytes], key: str, start: int, info: zipfile.ZipInfo, block: int = 1 << 24) -> None:
        """Compare an uncompressed member's CRC-32 with its zip entry, once per version of the file."""
        st = os.stat(self.path)
        tag = (str(self.path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, key)
        if tag in _CRC_CHECKED:
            return
        raw.seek(start)
        crc, left = 0, info.file_size
        while left > 0:
            chunk = raw.read(min(block, left))
            if not chunk:
                raise BatchFileError(f"{str(self.path)!r}: array {key!r} ends early; the file is truncated")
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        if crc != info.CRC:
            raise _damaged(self.path, key, f"CRC-32 {crc:08x}, its zip entry records {info.CRC:08x}")
        _CRC_CHECKED.add(tag)

    def images(self) -> np.ndarray:
        """All images as a read-only array (memory-mapped when the member is uncompressed)."""
        self._require_images()
        mm = self._memmap(IMAGE_KEY)
        if mm is not None:
            return mm
        return self._load_small(IMAGE_KEY)

    def _require_images(self) -> None:
        if not self.has_images:
            raise BatchFileError(f"{str(self.path)!r} has no 'arr_0' images (arrays: {self.keys})")

    def iter_images(self, batch_size: int = 64) -> Iterator[np.ndarray]:
        """Yield consecutive uint8 NHWC chunks of at most ``batch_size`` images."""
        if batch_size < 1:
            raise InvalidParameterError(f"batch_size must be >= 1, got {batch_size}")
        self._require_images()
        n = self.num_images
        if n == 0:
            return
        mm = self._memmap(IMAGE_KEY)
        if mm is not None:
            for i in range(0, n, batch_size):
                yield np.array(mm[i : i + batch_size])
            return
        try:
            yield from self._stream(batch_size, n)
        except zipfile.BadZipFile as exc:
            raise _damaged(self.path, IMAGE_KEY, str(exc)) from None
        except (zlib.error, EOFError) as exc:
            raise _damaged(self.path, IMAGE_KEY, f"{type(exc).__name__}: {exc}") from None

    def _stream(self, batch_size: int, n: int) -> Iterator[np.ndarray]:
        """Chunks of a compressed member, decompressed as they are read; zipfile checks the CRC-32 at the end."""
        zf, fh = self._open_member(IMAGE_KEY)
        with zf, fh:
            shape, fortran, dtype = self._read_header(fh, IMAGE_KEY)
            if fortran:  # rare: np.save of a Fortran-ordered array; read it whole
                whole = self.images()
                for i in range(0, n, batch_size):
                    yield np.ascontiguousarray(whole[i : i + batch_size])
                return
            row = int(np.prod(shape[1:])) * dtype.itemsize
            for i in range(0, n, batch_size):
                count = min(batch_size, n - i)
                buf = _read_exactly(fh.read, count * row, self.path)
                chunk = np.frombuffer(buf, dtype=dtype).reshape((count, *shape[1:])).copy()
                if i + count >= n:
                    fh.read(1)  # reaching the end makes zipfile check the CRC-32, before the last chunk is used
                yield chunk

    def __repr__(self) -> str:
        return f"NpzBatch({str(self.path)!r}, keys={self.keys}, images={self.image_shape})"


def _read_exactly(read: Callable[[int], bytes], size: int, path: Path) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = read(size - got)
        if not chunk:
            raise BatchFileError(f"{str(path)!r}: 'arr_0' ended early; the file is truncated")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def load_batch(path: str | os.PathLike[str], *, verify: bool = True) -> NpzBatch:
    """Open a sample or reference batch (``.npz``); nothing large is read until images are iterated.

    ``verify=False`` skips the CRC-32 check of memory-mapped members (for a caller that checked the
    file's sha256 itself); the zip structure and headers are always checked.
    """
    return NpzBatch(path, verify=verify)


load_reference_batch = load_batch
load_sample_batch = load_batch
