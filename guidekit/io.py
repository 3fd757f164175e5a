"""Sample and reference batches in the ADM evaluator layout, uint8 conversion, PNG grids.

* Batches are ``.npz`` files: ``arr_0`` uint8 images (N, H, W, C), ``arr_1`` int64 labels (samples),
  and for reference batches optionally precomputed ``mu``, ``sigma`` (pool features) and ``mu_s``,
  ``sigma_s`` (spatial features).
* Reading never unpickles (``allow_pickle=False``) and never loads all images at once: an
  uncompressed member (``np.savez``) is memory-mapped, a compressed one is streamed in chunks.
* Writing goes to a temporary file in the target folder and is moved into place with ``os.replace``.
  :class:`SampleBatchWriter` streams a batch to disk chunk by chunk (memory bounded by one chunk), and
  :func:`merge_sample_batches` joins shards (``guidekit merge-batches``) the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from guidekit.errors import GuidekitError, InvalidParameterError

IMAGE_KEY = "arr_0"
LABEL_KEY = "arr_1"
STAT_KEYS = ("mu", "sigma", "mu_s", "sigma_s")
EXPECTED_KEYS = "'arr_0' (uint8 images N×H×W×C) and/or precomputed 'mu', 'sigma' (and 'mu_s', 'sigma_s')"


class BatchFileError(GuidekitError, ValueError):
    """A batch file is missing, unreadable, or lacks the expected arrays."""


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and ``os.replace`` it onto ``path``.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not the
    0600 of a temporary file; on any error or Ctrl-C the temporary file is removed.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(21, "is a folder; give the path of a file to write", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_npz(path: str | os.PathLike[str], **arrays: Any) -> Path:
    """Write arrays to an uncompressed ``.npz`` atomically (memory-mappable when read back)."""
    clean = {}
    for key, value in arrays.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise InvalidParameterError(f"array {key!r} has dtype object; only numeric arrays can be written")
        clean[key] = arr
    with atomic_write(path) as fh:
        np.savez(fh, **clean)
    return Path(path)


def to_uint8(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Model output in [-1, 1], NCHW (or CHW) → uint8 NHWC (or HWC).

    ``((x + 1) * 127.5).clamp(0, 255).to(torch.uint8)``: truncates, as the ADM sampling scripts do
    (FID parity with published numbers needs the same conversion).
    """
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        raise InvalidParameterError(f"to_uint8 expects floating-point images in [-1, 1], got dtype {t.dtype}")
    if t.ndim not in (3, 4):
        raise InvalidParameterError(f"to_uint8 expects NCHW or CHW images, got shape {tuple(t.shape)}")
    out = ((t + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    return out.permute(1, 2, 0).contiguous() if out.ndim == 3 else out.permute(0, 2, 3, 1).contiguous()


def _images_uint8_nhwc(images: Any, what: str = "images") -> np.ndarray:
    """uint8 NHWC stays as it is; floating point is model output (NCHW in [-1, 1]) → :func:`to_uint8`."""
    if isinstance(images, np.ndarray) and np.issubdtype(images.dtype, np.floating):
        images = torch.from_numpy(images)
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim == 4 and images.shape[1] not in (1, 3, 4):
            raise InvalidParameterError(
                f"floating-point {what} must be model output N×C×H×W in [-1, 1], got shape {tuple(images.shape)}"
                + (" (that looks like N×H×W×C: pass x.permute(0, 3, 1, 2), or uint8 N×H×W×C)"
                   if images.shape[-1] in (1, 3, 4) else "")
            )
        images = to_uint8(images)
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8:
        raise InvalidParameterError(
            f"{what} must be uint8 N×H×W×C, or floating point N×C×H×W in [-1, 1]; got dtype {arr.dtype}"
        )
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise InvalidParameterError(f"{what} must be uint8 N×H×W×C with C in (1, 3, 4), got shape {arr.shape}")
    return arr


def write_sample_batch(
    path: str | os.PathLike[str], images: Any, labels: Any | None = None
) -> Path:
    """Write samples as the ADM evaluator reads them: ``arr_0`` uint8 NHWC, ``arr_1`` int64 labels.

    ``images``: uint8 NHWC, or floating-point NCHW model output in [-1, 1] (converted by :func:`to_uint8`).
    """
    arr = _images_uint8_nhwc(images)
    arrays: dict[str, np.ndarray] = {IMAGE_KEY: arr}
    if labels is not None:
        arrays[LABEL_KEY] = _labels_int64(labels, arr.shape[0])
    return write_npz(path, **arrays)


def _labels_int64(labels: Any, count: int) -> np.ndarray:
    """One integer label per image → int64 array."""
    lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != count or not np.issubdtype(lab.dtype, np.integer):
        raise InvalidParameterError(
            f"labels must be {count} integers (one per image), got dtype {lab.dtype}, shape {lab.shape}"
        )
    return lab.astype(np.int64)


def sample_batch_name(num_images: int, image_shape_hwc: Sequence[int], shard_index: int = 0,
                      num_shards: int = 1) -> str:
    """``samples_{N}x{H}x{W}x{C}.npz``, or ``..._shard{I}of{S}.npz`` for shard I of S (N counts all shards)."""
    stem = "samples_" + "x".join(str(int(n)) for n in (num_images, *image_shape_hwc))
    return f"{stem}_shard{shard_index}of{num_shards}.npz" if num_shards > 1 else f"{stem}.npz"


class SampleBatchWriter:
    """Write a sample batch (``arr_0`` uint8 NHWC, ``arr_1`` int64 labels) chunk by chunk.

    The file is an uncompressed ``.npz`` that ``np.load`` and :func:`load_batch` read like one written by
    :func:`write_sample_batch`, but only one chunk of images is in memory at a time (labels, 8 bytes an
    image, are kept until the end). Use it as a context manager; the file appears (atomically) only when
    the block ends without error and exactly ``num_images`` images were added::

        with SampleBatchWriter("samples.npz", 50_000, (256, 256, 3)) as writer:
            for images, labels in batches:
                writer.add(images, labels)  # uint8 NHWC, or float NCHW model output in [-1, 1]

    ``with_labels``: whether ``arr_1`` is written; by default the first :meth:`add` decides.
    """

    def __init__(self, path: str | os.PathLike[str], num_images: int, image_shape_hwc: Sequence[int],
                 *, with_labels: bool | None = None) -> None:
        hwc = tuple(int(n) for n in image_shape_hwc)
        if len(hwc) != 3 or min(hwc) < 1 or hwc[2] not in (1, 3, 4):
            raise InvalidParameterError(f"image_shape_hwc must be (H, W, C) with C in (1, 3, 4), got {image_shape_hwc}")
        if num_images < 0:
            raise InvalidParameterError(f"num_images must be >= 0, got {num_images}")
        self.path, self.num_images, self.image_shape_hwc = Path(path), int(num_images), hwc
        self.with_labels = with_labels
        self.count = 0
        self._labels: list[np.ndarray] = []
        self._stack: contextlib.ExitStack | None = None
        self._member: IO[bytes] | None = None
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> SampleBatchWriter:
        if self._stack is not None:
            raise InvalidParameterError(f"SampleBatchWriter({str(self.path)!r}) is already open")
        with contextlib.ExitStack() as stack:
            fh = stack.enter_context(atomic_write(self.path))
            self._zip = stack.enter_context(zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True))
            self._member = stack.enter_context(self._zip.open(IMAGE_KEY + ".npy", "w", force_zip64=True))
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                      "shape": (self.num_images, *self.image_shape_hwc)}
            np.lib.format.write_array_header_1_0(self._member, header)
            self._stack = stack.pop_all()
        return self

    def add(self, images: Any, labels: Any | None = None) -> None:
        """Append images (uint8 NHWC, or float NCHW in [-1, 1]) and, if the batch has labels, one label each."""
        if self._member is None:
            raise InvalidParameterError(f"SampleBatchWriter({str(self.path)!r}).add() needs an open writer: "
                                        "use it in a `with` block")
        arr = np.ascontiguousarray(_images_uint8_nhwc(images))
        if arr.shape[1:] != self.image_shape_hwc:
            raise InvalidParameterError(f"{str(self.path)!r}: images of shape {arr.shape[1:]} added to a batch "
                                        f"declared as {self.image_shape_hwc} (H, W, C)")
        if self.count + arr.shape[0] > self.num_images:
            raise InvalidParameterError(f"{str(self.path)!r}: {self.count + arr.shape[0]} images added but "
                                        f"{self.num_images} were declared; pass the total to SampleBatchWriter")
        if self.with_labels is None:
            self.with_labels = labels is not None
        if self.with_labels != (labels is not None):
            raise InvalidParameterError(f"{str(self.path)!r}: labels must be given with every add() or never "
                                        f"(this batch {'has' if self.with_labels else 'has no'} labels)")
        if labels is not None:
            self._labels.append(_labels_int64(labels, arr.shape[0]))
        self._member.write(arr.reshape(-1).data)
        self.count += arr.shape[0]

    def _finish(self) -> None:
        if self.count != self.num_images:
            raise InvalidParameterError(f"{str(self.path)!r}: {self.count} images added but {self.num_images} "
                                        "were declared; add them all, or declare the number you add")
        assert self._member is not None and self._zip is not None
        self._member.close()
        if self.with_labels:
            labels = np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64)
            with self._zip.open(LABEL_KEY + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, labels, allow_pickle=False)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        stack = self._stack
        assert stack is not None
        try:
            if exc_type is None:
                self._finish()
        except BaseException:
            if not stack.__exit__(*sys.exc_info()):  # discards the temporary file
                raise
            return False
        finally:
            self._stack = self._member = self._zip = None
        return bool(stack.__exit__(exc_type, exc, tb))  # on success: fsync and move into place


def write_reference_batch(
    path: str | os.PathLike[str],
    images: Any | None = None,
    *,
    mu: Any | None = None,
    sigma: Any | None = None,
    mu_s: Any | None = None,
    sigma_s: Any | None = None,
) -> Path:
    """Write a reference batch: ``arr_0`` images and/or precomputed statistics (float64)."""
    arrays: dict[str, np.ndarray] = {}
    if images is not None:
        arrays[IMAGE_KEY] = _images_uint8_nhwc(images)
    for key, value in (("mu", mu), ("sigma", sigma), ("mu_s", mu_s), ("sigma_s", sigma_s)):
        if value is not None:
            arrays[key] = np.asarray(value, dtype=np.float64)
    if not arrays:
        raise InvalidParameterError(f"a reference batch needs {EXPECTED_KEYS}; nothing was given")
    _check_stats(str(path), arrays)
    return write_npz(path, **arrays)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
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

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
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
        with zf, fh:
            return self._read_header(fh, key)

    def _load_small(self, key: str) -> np.ndarray:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return np.asarray(data[key])
        except ValueError as exc:
            raise BatchFileError(f"{str(self.path)!r}: cannot read array {key!r} ({exc})") from exc

    def labels(self) -> np.ndarray | None:
        """``arr_1`` (int64 labels) if present."""
        return self._load_small(LABEL_KEY).astype(np.int64) if LABEL_KEY in self.keys else None

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
            raw.seek(info.header_offset + 30 + name_len + extra_len)
            shape, fortran, dtype = self._read_header(raw, key)
            offset = raw.tell()
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")

    def images(self) -> np.ndarray:
        """All images as a read-only array (memory-mapped when the member is uncompressed)."""
        self._require_images()
        mm = self._memmap(IMAGE_KEY)
        if mm is not None:
            return mm
        with np.load(self.path, allow_pickle=False) as data:
            return np.asarray(data[IMAGE_KEY])

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
                yield np.frombuffer(buf, dtype=dtype).reshape((count, *shape[1:])).copy()

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


def load_batch(path: str | os.PathLike[str]) -> NpzBatch:
    """Open a sample or reference batch (``.npz``); nothing large is read until images are iterated."""
    return NpzBatch(path)


load_reference_batch = load_batch
load_sample_batch = load_batch


# --------------------------------------------------------------------------------------------
# merging shards
# --------------------------------------------------------------------------------------------
_SHARD_TAG = re.compile(r"_shard(\d+)of(\d+)\.npz$")


def _shard_order(paths: list[Path]) -> list[Path]:
    """Files all named ``..._shard{I}of{S}.npz`` go in shard order (a shell glob puts shard10 before shard2)."""
    tags = [_SHARD_TAG.search(p.name) for p in paths]
    if not all(tags):
        return paths
    numbers = [(t.string[: t.start()], int(t[1]), int(t[2])) for t in tags if t]
    index = {i: p for (_, i, _), p in zip(numbers, paths)}
    runs = {(stem, s) for stem, _, s in numbers}
    total = numbers[0][2]
    if len(runs) != 1 or len(index) != len(paths) or max(index) >= total:
        raise BatchFileError(f"shard files {[p.name for p in paths]} mix runs or shard counts, or repeat a "
                             "shard; pass each shard of one run once")
    missing = sorted(set(range(total)) - set(index))
    if missing:
        raise BatchFileError(f"shards {missing} of {total} are missing; pass all {total} shard files "
                             "(or rename them if you mean to merge part of a run)")
    return [index[i] for i in sorted(index)]


def merge_sample_batches(out: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
                         chunk_size: int = 256) -> Path:
    """Concatenate sample batches into ``out`` (``guidekit merge-batches``), ``chunk_size`` images at a time.

    All inputs need uint8 images of one H×W×C, and labels in all of them or none (empty shards aside).
    Files named ``..._shard{I}of{S}.npz``, as ``guidekit sample --num-shards`` writes them, are merged in
    shard order and must be complete; other files are merged in the order given.
    """
    if not inputs:
        raise InvalidParameterError("merge_sample_batches needs at least one input batch")
    batches = [load_batch(p) for p in _shard_order([Path(p) for p in inputs])]
    shapes = []
    for b in batches:
        b._require_images()
        shapes.append(tuple(b.image_shape or ())[1:])
    for b, hwc in zip(batches, shapes):
        if hwc != shapes[0]:
            raise BatchFileError(f"{str(b.path)!r} holds {hwc} images but {str(batches[0].path)!r} holds "
                                 f"{shapes[0]} (H, W, C); only batches of one image size merge")
    labelled = {b.path: LABEL_KEY in b.keys for b in batches if b.num_images}
    if len(set(labelled.values())) > 1:
        without = [str(p) for p, has in labelled.items() if not has]
        raise BatchFileError(f"{without} have no 'arr_1' labels but the other batches do; "
                             "merge batches that all have labels or none")
    with_labels = any(labelled.values())
    total = sum(b.num_images for b in batches)
    with SampleBatchWriter(out, total, shapes[0], with_labels=with_labels) as writer:
        for b in batches:
            labels = b.labels() if with_labels and b.num_images else None
            if labels is not None and labels.shape != (b.num_images,):
                raise BatchFileError(f"{str(b.path)!r}: 'arr_1' has shape {labels.shape} for {b.num_images} images; "
                                     "a sample batch needs one label per image")
            start = 0
            for chunk in b.iter_images(chunk_size):
                writer.add(chunk, None if labels is None else labels[start : start + len(chunk)])
                start += len(chunk)
    return Path(out)


# --------------------------------------------------------------------------------------------
# PNG grids (no Pillow)
# --------------------------------------------------------------------------------------------
_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA


def encode_png(image: np.ndarray) -> bytes:
    """Encode a uint8 H×W×C (C in 1..4) or H×W image as PNG bytes (8-bit, no filtering)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in _PNG_COLOR_TYPE:
        raise InvalidParameterError(f"encode_png needs uint8 H×W×C with C in 1..4, got {img.dtype} {img.shape}")
    h, w, c = img.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * c)], axis=1)  # filter type 0
    header = struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOR_TYPE[c], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def make_grid(x: Any, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile images into one uint8 H×W×C array, ``nrow`` images per row (default ≈ √N)."""
    if isinstance(x, (torch.Tensor, np.ndarray)) and len(x.shape) == 3:
        x = x[None]  # one image
    imgs = _images_uint8_nhwc(x, "grid images")
    n, h, w, c = imgs.shape
    if n == 0:
        raise InvalidParameterError("save_grid needs at least one image")
    nrow = nrow if nrow is not None else max(1, math.ceil(math.sqrt(n)))
    if nrow < 1 or padding < 0:
        raise InvalidParameterError(f"nrow must be >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y0, x0 = padding + r * (h + padding), padding + q * (w + padding)
        grid[y0 : y0 + h, x0 : x0 + w] = imgs[i]
    return grid


def save_grid(
    path: str | os.PathLike[str], x: Any, nrow: int | None = None, padding: int = 2, pad_value: int = 0
) -> Path:
    """Write images as one PNG grid, atomically. ``x``: uint8 NHWC, or model output NCHW in [-1, 1]."""
    if Path(path).suffix.lower() != ".png":
        raise InvalidParameterError(f"save_grid writes PNG; give a path ending in .png, not {str(path)!r}")
    data = encode_png(make_grid(x, nrow=nrow, padding=padding, pad_value=pad_value))
    with atomic_write(path) as fh:
        fh.write(data)
    return Path(path)
