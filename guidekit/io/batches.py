"""Sample and reference batches in the ADM evaluator layout.

* Batches are ``.npz`` files: ``arr_0`` uint8 images (N, H, W, C), ``arr_1`` int64 labels (samples),
  and for reference batches optionally precomputed ``mu``, ``sigma`` (pool features) and ``mu_s``,
  ``sigma_s`` (spatial features).
* Reading is in :mod:`.reading`.
* Writing goes to a temporary file in the target folder and is moved into place with ``os.replace``.
  :class:`SampleBatchWriter` streams a batch to disk chunk by chunk (memory bounded by one chunk), and
  :func:`merge_sample_batches` joins shards (``guidekit merge-batches``) the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from guidekit.errors import InvalidParameterError, WriteError

from .atomic import atomic_write, noted
from .images import _images_uint8_nhwc
from .reading import EXPECTED_KEYS, IMAGE_KEY, LABEL_KEY, STAT_KEYS, BatchFileError, NpzBatch, _check_stats, load_batch

__all__ = ["EXPECTED_KEYS", "IMAGE_KEY", "LABEL_KEY", "STAT_KEYS", "BatchFileError", "NpzBatch", "SampleBatchWriter",
           "load_batch", "merge_sample_batches", "sample_batch_name", "write_npz", "write_reference_batch",
           "write_sample_batch"]

# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
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


def _check_run_records(paths: list[Path]) -> dict[str, Any]:
    """The shards' run records agree on every option but the shard index, and each shard still has the
    sha256 its record holds; returns what the merged batch's manifest records about its inputs."""
    from guidekit.errors import IdentityError
    from guidekit.identity import changed_inputs, file_sha256, find_record, recorded_content, verify_content

    found = [find_record(p) for p in paths]
    if not any(found):
        return {"shards": [{"file": p.name, "sha256": file_sha256(p)} for p in paths], "options": None}
    missing = [str(p) for p, f in zip(paths, found) if f is None]
    if missing:
        raise IdentityError(f"{missing} have no run record (run.json) beside them but the other batches do, so "
                            "guidekit cannot tell whether they come from the same run; merge batches that all have "
                            "their records, or none")
    shards, first = [], None
    for path, (where, record) in zip(paths, found):  # type: ignore[misc]
        entry = recorded_content(record, path.name)
        if entry is not None:
            verify_content(path, entry, f"sample that shard again (its record is {str(where)!r})")
        options = record.get("options")
        if not isinstance(options, dict):
            raise IdentityError(f"{str(where)!r} records no options, so {str(path)!r} cannot be checked against the "
                                "other shards; sample it again with this guidekit")
        if first is None:
            first = (path, options)
        differ = changed_inputs(first[1], options, ignore=("shard_index",))
        if differ:
            raise IdentityError(f"{str(first[0])!r} and {str(path)!r} come from runs with different options "
                                f"({'; '.join(differ)}); merging them would mix two runs in one batch. Merge the "
                                "shards of one run (same options, one --num-shards), resampling the odd one out")
        shards.append({"file": path.name, "sha256": entry["sha256"] if entry else file_sha256(path)})
    common = {k: v for k, v in first[1].items() if k != "shard_index"} if first else None
    return {"shards": shards, "options": common}


def merge_sample_batches(out: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
                         chunk_size: int = 256) -> Path:
    """Concatenate sample batches into ``out`` (``guidekit merge-batches``), ``chunk_size`` images at a time.

    All inputs need uint8 images of one H×W×C, and labels in all of them or none (empty shards aside).
    Files named ``..._shard{I}of{S}.npz``, as ``guidekit sample --num-shards`` writes them, are merged in
    shard order and must be complete; other files are merged in the order given. When the inputs have
    run records (``run.json``), they must agree on every option but the shard index, and each input
    must still have the sha256 its record holds (:class:`~guidekit.errors.IdentityError` otherwise).
    ``OUT.manifest.json`` records the merged batch's sha256 and its inputs' (see :mod:`guidekit.identity`).
    """
    from guidekit.identity import manifest_path, write_manifest

    if not inputs:
        raise InvalidParameterError("merge_sample_batches needs at least one input batch")
    ordered = _shard_order([Path(p) for p in inputs])
    sources = _check_run_records(ordered)  # first: a damaged or replaced shard is named with its record
    batches = [load_batch(p) for p in ordered]
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
    with contextlib.suppress(FileNotFoundError):
        manifest_path(out).unlink()  # it described an earlier OUT: kept, it would refuse this one as "replaced"
    try:
        write_manifest(out, sources, kind="merged sample batch")
    except WriteError as exc:
        raise noted(exc, f"{out} itself was written, without the manifest that lets readers check it: free space "
                    "and merge again with --overwrite") from None
    return Path(out)
