"""Sample batches that survive a kill (``guidekit sample --resume``).

A run writes ``samples_....npz`` through a folder ``samples_....parts/`` beside it:

* every finished chunk (one sampling batch, global indices ``[start, end)``) is written atomically as
  ``chunk_{start}_{end}.npz``, then recorded with its sha256 in ``manifest.json`` (also replaced
  atomically), which holds the options that change the output (seed, checkpoints' digests, scaler, the
  provenance of every component's code, ...) and the chunks done;
* a chunk that is not in the manifest was cut short and is redone; a chunk whose sha256 no longer
  matches (damaged on disk) is discarded with a warning and redone alone, the others are kept;
* when all chunks are done they are streamed into the final ``.npz`` (atomically), and the folder is
  removed after the caller has written its record (``run.json``, which keeps the options). Until then
  the run needs about twice the batch's size on disk.

So a SIGKILL at any moment leaves either nothing new, or chunks that ``--resume`` keeps, or a final file
whose record says which options made it (and, from :meth:`ChunkedSampleBatch.write_record`, the sha256
of its content, checked when the run is met again). Resuming with other options, or with components
whose code changed (a plugin that now shadows a built-in name), is refused, naming the option.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GuidekitError, IdentityError, WriteError
from .identity import changed_inputs, content_record, file_sha256, recorded_content, verify_content
from .io import (
    BatchFileError,
    SampleBatchWriter,
    atomic_write,
    load_batch,
    noted,
    remove_stale_temporaries,
    write_sample_batch,
)

FORMAT = "guidekit-sample-chunks/1"
MANIFEST = "manifest.json"
MODES = ("new", "resume", "overwrite")


class ResumeError(GuidekitError, ValueError):
    """An output that exists (and may not be replaced), or a resume with options that differ."""


__all__ = ["ChunkedSampleBatch", "ResumeError", "file_sha256", "read_manifest"]


def read_manifest(parts: Path) -> dict[str, Any] | None:
    """The manifest of a parts folder, or None when there is none."""
    path = parts / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResumeError(f"{str(path)!r} is unreadable ({exc}); pass --overwrite to start again") from exc
    if manifest.get("format") != FORMAT:
        raise ResumeError(f"{str(path)!r} is not a {FORMAT} manifest; pass --overwrite to start again")
    return manifest


def _normalised(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, sort_keys=True))


def _refuse_mismatch(saved: dict[str, Any], current: dict[str, Any], where: Path, flags: dict[str, str]) -> None:
    details = changed_inputs(saved, current, flags)
    if details:
        code = [d for d in details if d.startswith("component ")]
        why = (" — the code of a component changed, so one output would mix two implementations; resume with the "
               "plugins and versions of the first run (drop the --plugin that shadows the name)") if code else ""
        raise ResumeError(f"cannot resume {str(where)!r} with different options ({'; '.join(details)}){why}. Rerun "
                          "with the original options, or pass --overwrite to start again, or use another --out")


class ChunkedSampleBatch:
    """One process's sample batch ``path`` covering global indices ``[first, end)``, committed chunk by chunk.

    ``mode``: ``"new"`` refuses an existing output, ``"resume"`` continues it (options must match),
    ``"overwrite"`` discards it. ``flags`` maps option keys to the command-line flags named in errors.
    ``others``: parts folders of unfinished runs with other file names (another sample count or shard
    count); resuming when only those exist is refused, naming the options that differ.
    """

    def __init__(self, path: str | os.PathLike[str], first: int, end: int, image_shape_hwc: Sequence[int],
                 *, mode: str = "new", record: str | os.PathLike[str] | None = None,
                 companions: Sequence[str | os.PathLike[str]] = (), flags: dict[str, str] | None = None,
                 others: Sequence[str | os.PathLike[str]] = ()) -> None:
        if mode not in MODES:
            raise ResumeError(f"mode must be one of {MODES}, got {mode!r}")
        self.path, self.first, self.end = Path(path), int(first), int(end)
        self.image_shape_hwc = tuple(int(n) for n in image_shape_hwc)
        self.parts = self.path.with_suffix(".parts")
        self.mode = mode
        self.record = None if record is None else Path(record)
        self.companions = [Path(p) for p in companions]
        self.flags = flags or {}
        self.others = [Path(p) for p in others]
        self.options: dict[str, Any] = {}
        self.done: dict[int, int] = {}
        self.sha256: dict[int, str | None] = {}  # start -> sha256 of the committed chunk file
        self.content: dict[str, Any] | None = None  # sha256 and size of the finished batch

    # -- the state on disk ---------------------------------------------------------------------
    def _outputs(self) -> list[Path]:
        paths = [self.path, self.parts, *self.companions] + ([self.record] if self.record else [])
        return [p for p in paths if p.exists()]

    def check_mode(self) -> None:
        """Refuse (``mode="new"``) an output that exists; cheap, so it can run before loading networks."""
        found = self._outputs()
        if self.mode == "new" and found:
            raise ResumeError(f"{str(found[0])!r} already exists; pass --resume to continue that run, "
                              "--overwrite to replace it, or choose another --out")

    def _clean_temporaries(self) -> None:
        """Remove temporary files a killed writer left beside the outputs (``.NAME.*.tmp``)."""
        remove_stale_temporaries(self.path, *self.companions, *([self.record] if self.record else []))

    def prepare(self, options: dict[str, Any]) -> bool:
        """Set up the parts folder for ``options``; True when a matching finished output is already there."""
        self.check_mode()
        self.options = _normalised(options)
        self._clean_temporaries()
        manifest = read_manifest(self.parts)
        if self.mode == "overwrite" or (manifest is None and self.parts.exists()):
            self._remove_parts()
            manifest = None
        if self.mode == "overwrite":
            for p in [self.path, *self.companions] + ([self.record] if self.record else []):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        if self.mode == "resume" and manifest is None and not self.path.exists():
            for other in self.others:
                saved = read_manifest(other)
                if saved is not None:
                    _refuse_mismatch(saved.get("options", {}), self.options, other, self.flags)
            if self.record is not None and self.record.exists():  # another finished run: do not replace its record
                _refuse_mismatch(self._read_record_options(self.record), self.options, self.record, self.flags)
        if manifest is None and self.path.exists():  # a finished run: its record says what made it
            saved = self._read_record_options()
            _refuse_mismatch(saved, self.options, self.path, self.flags)
            self._verify_finished()
            return True
        if manifest is not None:
            _refuse_mismatch(manifest.get("options", {}), self.options, self.parts, self.flags)
            self.done = self._valid_chunks(manifest)
            for stray in self.parts.iterdir():  # chunks cut short, or not recorded
                if stray.name != MANIFEST and stray.name not in {self._chunk_name(s, e) for s, e in self.done.items()}:
                    stray.unlink()
        self.parts.mkdir(parents=True, exist_ok=True)
        self._write_manifest()
        return False

    def _verify_finished(self) -> None:
        """The finished batch still has the sha256 its record holds (records written before 0.3 hold none)."""
        try:
            record = json.loads(self.record.read_text()) if self.record is not None else {}
        except (OSError, ValueError):
            return
        entry = recorded_content(record, self.path.name)
        if entry is not None:
            verify_content(self.path, entry, f"pass --overwrite to sample it again (its record is {str(self.record)!r})")

    def _read_record_options(self, made: Path | None = None) -> dict[str, Any]:
        try:
            record = json.loads(self.record.read_text()) if self.record is not None else {}
        except (OSError, ValueError):
            record = {}
        if "options" not in record:
            raise ResumeError(f"{str(made or self.path)!r} exists but {str(self.record)!r} does not say which options "
                              "made it; pass --overwrite to replace it, or choose another --out")
        return record["options"]

    def _valid_chunks(self, manifest: dict[str, Any]) -> dict[int, int]:
        """The recorded chunks that are intact: sha256 as recorded (older manifests: readable, right length).
        A damaged one is reported and left out, so it is sampled again; the others are kept."""
        done = {}
        for entry in manifest.get("chunks", []):
            start, end, sha = (*entry, None)[:3]
            path = self.parts / self._chunk_name(start, end)
            try:
                if sha is not None:
                    verify_content(path, sha, "it is sampled again")
                ok = load_batch(path).num_images == end - start
            except (BatchFileError, IdentityError, OSError) as exc:
                warnings.warn(f"discarding a damaged chunk of the run ({exc}); the other chunks are kept", stacklevel=3)
                ok = False
            if ok and self.first <= start < end <= self.end:
                done[int(start)] = int(end)
                self.sha256[int(start)] = sha
        return done

    def _write_manifest(self) -> None:
        manifest = {"format": FORMAT, "options": self.options, "sample_range": [self.first, self.end],
                    "chunks": sorted([s, e, self.sha256.get(s)] for s, e in self.done.items())}
        with atomic_write(self.parts / MANIFEST, "w") as fh:
            json.dump(manifest, fh, indent=1)

    def _remove_parts(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.parts / MANIFEST).unlink()  # first: a folder without a manifest is never trusted
        shutil.rmtree(self.parts, ignore_errors=True)

    @staticmethod
    def _chunk_name(start: int, end: int) -> str:
        return f"chunk_{start:09d}_{end:09d}.npz"

    # -- sampling ------------------------------------------------------------------------------
    def pending(self, batch_size: int) -> Iterator[tuple[int, int]]:
        """(start, count) of the chunks still to sample, in order."""
        for start in range(self.first, self.end, batch_size):
            if start not in self.done:
                yield start, min(batch_size, self.end - start)

    @property
    def num_done(self) -> int:
        return sum(e - s for s, e in self.done.items())

    def commit(self, start: int, images: Any, labels: Any | None) -> None:
        """Write one finished chunk atomically, then record it (with its sha256) in the manifest.

        A failed write (disk full ...) is a :class:`~guidekit.errors.WriteError` naming the file and saying
        that the chunks committed before are kept.
        """
        count = len(images)
        path = self.parts / self._chunk_name(start, start + count)
        try:
            write_sample_batch(path, images, labels)
            self.sha256[start] = file_sha256(path)
            self.done[start] = start + count
            self._write_manifest()
        except WriteError as exc:
            self.done.pop(start, None)
            raise noted(exc, f"the {self.num_done} samples committed before are kept: free space or fix the folder, "
                        "then run the same command with --resume") from None

    def finish(self, grid_max: int = 0) -> list[np.ndarray]:
        """Stream the chunks, in order, into the final batch (atomically); return up to ``grid_max`` images."""
        starts = sorted(self.done)
        covered = [self.first] + [self.done[s] for s in starts]
        if starts and (starts != covered[:-1] or covered[-1] != self.end) or (not starts and self.first != self.end):
            raise ResumeError(f"{str(self.parts)!r} does not cover samples [{self.first}, {self.end}); "
                              "rerun with --resume to sample the rest")
        grid: list[np.ndarray] = []
        with SampleBatchWriter(self.path, self.end - self.first, self.image_shape_hwc) as writer:
            for start in starts:
                path = self._checked_chunk(start)
                chunk = load_batch(path, verify=self.sha256.get(start) is None)  # a checked sha256 covers the CRC
                images, labels = chunk.images(), chunk.labels()
                writer.add(np.asarray(images), labels)
                grid.extend(np.array(images[: max(0, grid_max - len(grid))]))
        self.content = content_record(self.path)
        return grid

    def _checked_chunk(self, start: int) -> Path:
        """A committed chunk, checked against its sha256; a damaged one is dropped from the manifest (so that
        ``--resume`` samples it again, alone) and reported."""
        path = self.parts / self._chunk_name(start, self.done[start])
        sha = self.sha256.get(start)
        try:
            if sha is not None:
                verify_content(path, sha, "it was discarded")
            load_batch(path).num_images  # noqa: B018 - the zip structure and headers
        except (IdentityError, BatchFileError, OSError) as exc:
            del self.done[start]
            self.sha256.pop(start, None)
            self._write_manifest()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise ResumeError(f"a committed chunk was damaged on disk ({exc}); run the same command with --resume to "
                              f"sample its {self.end - self.first - self.num_done} samples again (the other chunks "
                              "are kept)") from None
        return path

    def write_record(self, record: dict[str, Any]) -> Path:
        """Write the run record (``run.json``) atomically, adding ``"options"`` and the finished batch's
        ``"content"`` (sha256 and size, checked when the run is met again or its batch merged)."""
        if self.record is None:
            raise ResumeError("this ChunkedSampleBatch was made without record=...; give the run record's path")
        full = {**record, "options": self.options}
        if self.content is not None:
            full["content"] = {self.path.name: self.content}
        with atomic_write(self.record, "w") as fh:
            json.dump(full, fh, indent=2)
        return self.record

    def cleanup(self) -> None:
        """Remove the parts folder (after the caller recorded the finished run)."""
        self._remove_parts()
