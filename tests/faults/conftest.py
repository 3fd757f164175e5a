"""Fault injection shared by tests/faults: damaged bytes, a full disk, killed processes.

* :func:`flip_byte` / :func:`truncate` damage a file in place (its modification time changes, as a real
  disk or copy error's would be noticed no later than the next write);
* the ``disk_full`` fixture makes the n-th write of an atomic output fail with ENOSPC (``OSError(28)``)
  inside the real write path (:class:`guidekit.io.atomic._Recording`), so torch.save, np.savez and
  json.dump all see a failing ``write`` as on a full disk;
* :func:`start_writer` / :func:`start_cli` start Python code or a ``guidekit`` command in its own process
  group, for SIGKILL at a random moment and for a first writer that a second one meets (test_locks.py);
* ``tiny_data`` / ``tiny_unet``: an 8×8 grey ``.npz`` and a diffusion network trained on it for one step
  (a ``guidekit train-diffusion`` output folder), so that commands run in well under a second;
* ``waiting_sampler``: a ``--plugin`` module (``waiting_ddim``) whose sampler ``waiting-ddim`` is DDIM, but
  waits while ``$HOLD_FILE`` exists once it has made ``$HOLD_AFTER`` steps: a first writer that holds its
  lock, with chunks committed, without using the CPU.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from guidekit.cli import main
from guidekit.io import atomic
from guidekit.registry import default_registry

#: a 1-level ADM UNet for 8×8 grey images, without attention: the smallest network train-diffusion builds
UNET8 = ("--image_size 8 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1 "
         "--attention_resolutions -1 --num_head_channels 32 --learn_sigma False")
TRAIN = ["--batch-size", "4", "--device", "cpu", "--no-progress", "--diffusion-steps", "50"]


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


@pytest.fixture
def disk_full_at(monkeypatch) -> Callable[[str], None]:
    """``disk_full_at("card.json")``: every ``write`` of an atomic output of that file name fails with ENOSPC (the
    temporary file's name, ``.NAME.XXXX.tmp``, tells which output is being written); ``disk_full_at(None)``: space
    again."""

    real = atomic._Recording.write

    def arm(name: str | None) -> None:
        if name is None:
            monkeypatch.setattr(atomic._Recording, "write", real)
            return

        def write(self, data):
            tmp = os.path.basename(os.readlink(f"/proc/self/fd/{self._fh.fileno()}"))
            if tmp.startswith(f".{name}.") and tmp.count(".") == name.count(".") + 3:
                self.error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                raise self.error
            return real(self, data)

        monkeypatch.setattr(atomic._Recording, "write", write)

    return arm


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C raises KeyboardInterrupt even when the test run itself was started in the
    background (a shell's ``cmd &`` ignores SIGINT, children inherit that, and Python then never sees Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_writer(code: str, cwd: Path) -> subprocess.Popen:
    """Run ``python -c code`` in ``cwd`` in a new process group (so a SIGKILL reaches all of it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GUIDEKIT_PLUGINS",)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, start_new_session=True,
                            preexec_fn=_default_sigint, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_cli(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Run ``guidekit ARGV`` (``python -m guidekit.cli``) in ``cwd`` in a new process group, one CPU thread."""
    base = {k: v for k, v in os.environ.items() if k not in ("GUIDEKIT_PLUGINS", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return subprocess.Popen([sys.executable, "-m", "guidekit.cli", *argv], cwd=cwd, start_new_session=True,
                            preexec_fn=_default_sigint, env={**base, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(cwd), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(done: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    """Poll ``done()`` until it holds; fail naming ``what`` (with the process's stderr if it ended)."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            pytest.fail(f"the first writer ended (status {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.05)


def chunks_done(parts: Path) -> int:
    """How many chunks the manifest of a ``guidekit sample`` parts folder records (-1: none readable yet)."""
    try:
        return len(json.loads((parts / "manifest.json").read_text())["chunks"])
    except (OSError, ValueError, KeyError):
        return -1


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "d8.npz"
    rng = np.random.default_rng(0)
    np.savez(path, arr_0=rng.integers(0, 256, (8, 8, 8, 1), dtype=np.uint8), arr_1=np.arange(8) % 2)
    return path


@pytest.fixture(scope="session")
def tiny_unet(tmp_path_factory, tiny_data) -> Path:
    out = tmp_path_factory.mktemp("nets") / "unet"
    assert main(["train-diffusion", "--data", str(tiny_data), "--flags", UNET8, "--steps", "1", *TRAIN,
                 "--out", str(out)]) == 0
    return out


WAITING_DDIM = '''"""DDIM that waits while $HOLD_FILE exists, once it has made $HOLD_AFTER steps (a test plugin)."""
import os
import time

import attrs

import guidekit as gk
from guidekit.samplers import DDIMSampler

STEPS = [0]


@gk.register_sampler("waiting-ddim")
@attrs.frozen
class WaitingDDIM(DDIMSampler):
    name = "waiting-ddim"

    def update(self, *args, **kwargs):
        STEPS[0] += 1
        hold = os.environ.get("HOLD_FILE")
        while hold and STEPS[0] > int(os.environ.get("HOLD_AFTER", "0")) and os.path.exists(hold):
            time.sleep(0.02)
        return super().update(*args, **kwargs)
'''


@contextlib.contextmanager
def plugin_module(folder: Path, name: str, source: str, components: list[tuple[str, str]]) -> Iterator[Path]:
    """Write module ``name`` into ``folder`` and import it here too (so in-process runs have the components a
    ``--plugin name`` subprocess has, with the same provenance); on exit unregister ``components`` ((kind, name)
    pairs) and forget the module. Yields ``folder``."""
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    sys.modules.pop(name, None)
    __import__(name)
    try:
        yield folder
    finally:
        for kind, component in components:
            default_registry().remove(kind, component)
        sys.modules.pop(name, None)
        sys.path.remove(str(folder))


@pytest.fixture
def waiting_sampler(tmp_path, monkeypatch) -> Iterator[Path]:
    """``waiting_ddim.py`` written into ``tmp_path`` and imported (:func:`plugin_module`); yields the folder."""
    monkeypatch.delenv("HOLD_FILE", raising=False)
    with plugin_module(tmp_path, "waiting_ddim", WAITING_DDIM, [("sampler", "waiting-ddim")]) as folder:
        yield folder
