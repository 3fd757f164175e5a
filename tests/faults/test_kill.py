"""SIGKILL at random moments of a chunked sample run, then resume: the batch is byte-identical (issue 18).

The writer drives :class:`guidekit.resume.ChunkedSampleBatch` with images that depend on the sample index
alone (as guidekit's per-sample seeds make them), so this runs in seconds; ``guidekit sample`` itself is
killed and resumed in plugins/guidekit-adm/tests/test_resume.py. Concurrent writers belong here too, once
outputs are locked: start a second writer with :func:`start_writer` while the first runs.
"""

from __future__ import annotations

import os
import random
import signal
import time

import numpy as np

from .conftest import start_writer
from .test_chunks import HWC, N, run

WRITER = f"""
import sys, time
import numpy as np
from pathlib import Path
from guidekit.resume import ChunkedSampleBatch

out = Path("o")
batch = ChunkedSampleBatch(out / "samples.npz", 0, {N}, {HWC}, mode=sys.argv[1] if len(sys.argv) > 1 else "resume",
                           record=out / "run.json")
if not batch.prepare({{"seed": 0}}):
    for start, count in batch.pending(2):
        imgs = np.stack([np.random.default_rng(i).integers(0, 256, {HWC}, dtype=np.uint8)
                         for i in range(start, start + count)])
        batch.commit(start, imgs, np.arange(start, start + count))
        print("committed", start, flush=True)
        time.sleep(0.05)
    batch.finish()
    batch.write_record({{"npz": "samples.npz"}})
    batch.cleanup()
print("done", flush=True)
"""


def test_sigkill_at_random_moments_then_resume_is_byte_identical(tmp_path):
    run(tmp_path / "ref")
    reference = (tmp_path / "ref" / "samples.npz").read_bytes()
    rng = random.Random(18)
    committed = []
    for _ in range(2):  # kill after a random number of further commits (0: while starting), at a random moment
        proc = start_writer(WRITER, tmp_path)
        wanted, seen = rng.randrange(0, 3), 0
        while seen < wanted and (line := proc.stdout.readline()) and line.startswith("committed"):
            seen += 1
        time.sleep(rng.uniform(0.0, 0.06))  # between two commits, or inside one
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        committed.append(seen)
    assert sum(committed) >= 1  # some chunks survived a kill and are reused
    proc = start_writer(WRITER, tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (tmp_path / "o" / "samples.npz").read_bytes() == reference
    assert not (tmp_path / "o" / "samples.parts").exists() and not list((tmp_path / "o").glob(".*.tmp"))
    with np.load(tmp_path / "o" / "samples.npz") as data:
        assert data["arr_1"].tolist() == list(range(N))
