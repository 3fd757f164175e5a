"""Fault injection shared by tests/faults: damaged bytes, a full disk, killed processes.

* :func:`flip_byte` / :func:`truncate` damage a file in place (its modification time changes, as a real
  disk or copy error's would be noticed no later than the next write);
* the ``disk_full`` fixture makes the n-th write of an atomic output fail with ENOSPC (``OSError(28)``)
  inside the real write path (:class:`guidekit.io.atomic._Recording`), so torch.save, np.savez and
  json.dump all see a failing ``write`` as on a full disk;
* :func:`start_writer` starts a command in its own process group, for SIGKILL at a random moment (and,
  once outputs are locked, for a second writer started while the first runs: concurrent-writer cases
  go beside the SIGKILL ones in test_kill.py).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from guidekit.io import atomic


def flip_byte(path: Path, offset: int, mask: int = 0x01) -> None:
    """XOR one byte of ``path`` (negative offsets count from the end)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: int) -> None:
    """Keep the first ``keep`` bytes of ``path`` (negative: drop that many from the end)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])


@pytest.fixture
def disk_full(monkeypatch) -> Callable[[int], list[int]]:
    """``disk_full(n)``: from the n-th ``write`` of an atomic output on (1-based), fail with ENOSPC; calling it
    again re-arms the count (a huge ``n``: space again). Returns the list of the writes seen."""
    seen: list[int] = []
    real = atomic._Recording.write

    def arm(n: int) -> list[int]:
        seen.clear()

        def write(self, data):
            seen.append(len(data) if hasattr(data, "__len__") else 0)
            if len(seen) >= n:
                self.error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                raise self.error
            return real(self, data)

        monkeypatch.setattr(atomic._Recording, "write", write)
        return seen

    return arm


def start_writer(code: str, cwd: Path) -> subprocess.Popen:
    """Run ``python -c code`` in ``cwd`` in a new process group (so a SIGKILL reaches all of it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GUIDEKIT_PLUGINS",)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
