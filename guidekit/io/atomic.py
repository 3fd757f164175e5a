"""Atomic file writes: a temporary file beside the target, fsync, ``os.replace``.

An :class:`OSError` while writing (disk full, permission denied, read-only file system) becomes a
:class:`~guidekit.errors.WriteError` that names the file and what to do; the target keeps its old
content (or stays absent), so data written before is safe.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from guidekit.errors import WriteError

_TMP_SUFFIX = ".tmp"  # temporary files are .NAME.<random>.tmp beside NAME


def remove_stale_temporaries(*paths: str | os.PathLike[str]) -> None:
    """Delete the temporary files a killed :func:`atomic_write` of each path left beside it."""
    for path in map(Path, paths):
        for tmp in path.parent.glob(f".{path.name}.*{_TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: errno -> what it means for an output and what to do
_WHY = {
    errno.ENOSPC: "no space left on the device; free some space or choose another output folder",
    errno.EDQUOT: "the disk quota is exceeded; free some space or choose another output folder",
    errno.EACCES: "permission denied; choose a folder you can write, or fix its permissions",
    errno.EPERM: "the operation is not permitted (an immutable file or folder?); choose another output folder",
    errno.EROFS: "the file system is read-only; choose an output folder on a writable disk",
    errno.EFBIG: "the file is too large for this file system; choose an output folder on another disk",
}


def write_error(path: str | os.PathLike[str], exc: BaseException, kept: str = "") -> WriteError:
    """A :class:`WriteError` for ``exc`` raised while writing ``path``, naming the file, the cause and the fix.

    ``kept`` adds what is safe (e.g. "the 40 samples committed before are kept; rerun with --resume").
    """
    where = Path(path)
    message = f"cannot write {str(where)!r}: {_reason(exc, where.parent)}. The file was not replaced" + (
        " (it keeps its earlier content)" if where.exists() else "") + (f"; {kept}" if kept else "")
    err = WriteError(message)
    err.errno, err.filename = getattr(exc, "errno", None), str(where)
    return err


def noted(exc: WriteError, note: str) -> WriteError:
    """``exc`` with ``note`` (what is kept, how to continue) added to its message; errno and file kept."""
    err = WriteError(f"{exc}; {note}")
    err.errno, err.filename = exc.errno, exc.filename
    return err


def _reason(exc: BaseException, folder: Path) -> str:
    """What an OSError (or torch's write failure) means for an output in ``folder``, and what to do."""
    code = getattr(exc, "errno", None)
    if code in _WHY:
        return _WHY[code]
    lines = str(exc).strip().splitlines()
    text = getattr(exc, "strerror", None) or (lines[0][:200] if lines else type(exc).__name__)
    free = _free_bytes(folder)
    return f"{text}; check the folder, its permissions and the free space" + (
        f" ({free / 2**20:.1f} MiB free there)" if free is not None else "")


def _free_bytes(folder: Path) -> int | None:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    try:
        return shutil.disk_usage(existing).free if existing is not None else None
    except OSError:
        return None


def probe_writable(folder: str | os.PathLike[str], what: str = "") -> None:
    """Create and delete a temporary file in ``folder`` (made if missing): a :class:`WriteError` now, not
    after a long computation, when nothing can be written there (read-only, permissions, even for root).
    ``what`` names the folder in the message (e.g. "--out")."""
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".guidekit-probe.", suffix=_TMP_SUFFIX, dir=target)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        label = f"{what} " if what else ""
        err = WriteError(f"cannot write into {label}{str(target)!r}: {_reason(exc, target)}; nothing was computed yet")
        err.errno, err.filename = exc.errno, str(target)
        raise err from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and ``os.replace`` it onto ``path``.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not the
    0600 of a temporary file; on any error or Ctrl-C the temporary file is removed.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(21, "is a folder; give the path of a file to write", str(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TMP_SUFFIX, dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc) from None
    recorder = None
    try:
        with os.fdopen(fd, mode) as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            recorder = _Recording(fh)
            yield recorder
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        cause = recorder.error if recorder is not None and recorder.error is not None else exc
        if _is_ours(cause, tmp, target) or (cause is exc and _is_torch_write_failure(exc)):
            raise write_error(target, cause) from None
        raise


def _is_ours(exc: BaseException, tmp: str, target: Path) -> bool:
    """An OSError of writing this file (not of reading an input inside the block, not a named guidekit error)."""
    if not isinstance(exc, OSError) or isinstance(exc, (WriteError, IsADirectoryError)):
        return False
    filename = getattr(exc, "filename", None)
    return filename is None or str(filename) in (str(tmp), str(target))


def _is_torch_write_failure(exc: BaseException) -> bool:
    """torch.save's "[enforce fail at inline_container.cc] ... unexpected pos" (a failed write it swallowed)."""
    return isinstance(exc, RuntimeError) and ("inline_container" in str(exc) or "PytorchStreamWriter" in str(exc))


class _Recording:
    """A file object that remembers the OSError of a failed ``write`` (torch.save turns it into a RuntimeError
    that has lost its errno; this keeps "disk full" nameable)."""

    def __init__(self, fh: IO[Any]) -> None:
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __iter__(self) -> Any:
        return iter(self._fh)
