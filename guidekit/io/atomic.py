"""Atomic file writes: a temporary file beside the target, fsync, ``os.replace``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TMP_SUFFIX, dir=target.parent)
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
