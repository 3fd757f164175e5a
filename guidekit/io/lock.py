"""One writer per output: a lock file holding the owner's pid, host, start time and command.

``with output_lock(out, "guidekit compare"):`` creates ``.NAME.lock`` beside the output ``out`` (a file
or a folder, named NAME) atomically (``O_CREAT | O_EXCL``, so it works across hosts that share the
folder), without creating ``out`` itself; a second writer gets an
:class:`~guidekit.errors.OutputLockedError` naming the first. A lock whose process is dead on this host
(a run killed with SIGKILL) is stale and taken over; taking over is serialised by ``flock`` on a
companion file, so two late-comers cannot both take the same stale lock. The lock is removed when the
block ends, whatever the outcome, if it is still ours.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import OutputLockedError

#: a lock file that stays empty or unreadable this long was left by a writer killed while creating it
UNREADABLE_GRACE_S = 5.0

__all__ = ["lock_owner", "lock_path", "output_lock", "read_lock"]


def read_lock(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The owner record of a lock file; None when it is missing, empty or unreadable."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(pid: Any) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def _stale(path: Path, record: dict[str, Any] | None) -> bool:
    """A lock left behind: its process is dead on this host, or it never got its record written."""
    if record is None:
        try:
            return time.time() - path.stat().st_mtime > UNREADABLE_GRACE_S
        except FileNotFoundError:
            return False
    return record.get("host") == socket.gethostname() and not _alive(record.get("pid"))


def _describe(record: dict[str, Any] | None) -> str:
    if record is None:
        return "a run that is still creating it"
    return (f"{record.get('command') or 'another run'} (pid {record.get('pid')} on {record.get('host')}, "
            f"started {record.get('started')})")


@contextlib.contextmanager
def _takeover_mutex(path: Path) -> Iterator[None]:
    """``flock`` on ``path`` + ``.takeover`` (where available), so that one process at a time judges a stale lock."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the check-then-remove below is then only nearly atomic
        yield
        return
    side = path.with_name(path.name + ".takeover")
    with open(side, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _acquire(path: Path, record: dict[str, Any], out: Path) -> None:
    """Create the lock file with ``record``, taking over a stale one; else name its owner."""
    deadline = time.monotonic() + 2 * UNREADABLE_GRACE_S
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if path.is_dir():
                raise OutputLockedError(f"{path} is a folder, but guidekit keeps the lock of {out} there (a file); "
                                        "remove that folder and run again") from None
            owner = read_lock(path)
            if owner is None and not path.exists():
                continue  # released between our two looks
            if not _stale(path, owner):
                if owner is None and time.monotonic() < deadline:
                    time.sleep(0.05)  # its owner is writing the record this instant
                    continue
                raise OutputLockedError(
                    f"{out} is being written by {_describe(owner)}; two runs into one output would mix their files. "
                    f"Wait for that run to finish, or choose another output. If it is gone for good (it ran on "
                    f"another host), delete {path}") from None
            with _takeover_mutex(path):
                current = read_lock(path)
                if path.exists() and _stale(path, current):
                    owner = _describe(current) if current is not None else "a run killed while creating it"
                    print(f"guidekit: taking over the stale lock of {owner} ({path})", file=sys.stderr)
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return


def lock_path(out: str | os.PathLike[str]) -> Path:
    """The lock file of output ``out``: ``.NAME.lock`` in the same folder."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


def lock_owner(out: str | os.PathLike[str]) -> str | None:
    """Who writes output ``out`` now (``"guidekit train-diffusion (pid 12, started ...)"``), for readers that meet
    it; None when nobody does (no lock, or a stale one)."""
    path = lock_path(out)
    if not path.is_file():
        return None
    record = read_lock(path)
    return None if _stale(path, record) else _describe(record)


@contextlib.contextmanager
def output_lock(out: str | os.PathLike[str], command: str) -> Iterator[Path]:
    """Hold the lock of output ``out`` (its folder is created) for the block; ``command`` is named to a second writer."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": command, "token": secrets.token_hex(8)}
    _acquire(path, record, Path(out))
    try:
        yield path
    finally:
        if (read_lock(path) or {}).get("token") == record["token"]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + ".takeover").unlink()
