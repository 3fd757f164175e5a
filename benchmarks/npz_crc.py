"""Cost of checking a memory-mapped batch's CRC-32 (and of a sha256 of the file) before reading its images.

    python benchmarks/npz_crc.py [--num 50000] [--size 64] [--repeats 3] [--out benchmarks/results/npz_crc_cpu.md]

Writes a random uint8 batch N×S×S×3 to a temporary folder, then times, interleaved, a full pass of
``load_batch(path, verify=False).iter_images(256)`` (no check: the memory map as before), the same with
the CRC-32 check (``verify=True``, the default; the cache of checked files is cleared each time, so every
pass pays for the check), and ``file_sha256`` alone. The file stays in the page cache, as it does when
``guidekit evaluate`` reads a batch that was just written; a cold read adds the disk time to every row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from guidekit.identity import file_sha256
from guidekit.io import SampleBatchWriter, load_batch, reading


def _pass(path: Path, verify: bool) -> float:
    reading._CRC_CHECKED.clear()
    start = time.perf_counter()
    for chunk in load_batch(path, verify=verify).iter_images(256):
        chunk.sum(dtype=np.uint64)  # touch the data, as an extractor would
    return time.perf_counter() - start


def _sha(path: Path) -> float:
    start = time.perf_counter()
    file_sha256(path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.npz"
        with SampleBatchWriter(path, args.num, (args.size, args.size, 3)) as writer:
            for start in range(0, args.num, 1000):
                count = min(1000, args.num - start)
                writer.add(rng.integers(0, 256, (count, args.size, args.size, 3), dtype=np.uint8),
                           np.zeros(count, np.int64))
        size_mb = path.stat().st_size / 2**20
        _pass(path, False)  # warm the page cache
        times: dict[str, list[float]] = {"read, no check": [], "read + CRC-32 check": [], "sha256 of the file": []}
        for _ in range(args.repeats):
            times["read, no check"].append(_pass(path, False))
            times["read + CRC-32 check"].append(_pass(path, True))
            times["sha256 of the file"].append(_sha(path))
    base = statistics.median(times["read, no check"])
    lines = [f"# CRC-32 check of a memory-mapped batch ({args.num}×{args.size}×{args.size}×3 uint8, {size_mb:.0f} MiB, "
             f"median of {args.repeats}, page cache warm)", "",
             "| pass | seconds | MiB/s | ratio to the unchecked read |", "|---|---:|---:|---:|"]
    for name, values in times.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med:.3f} | {size_mb / med:.0f} | {med / base:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
