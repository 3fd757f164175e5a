"""What the whole-loop benchmarks share: tiny ADM settings, interleaved timing, the ratio table they write.

Each run is timed once per round, rounds interleave the runs (so drift hits all alike), the first
round warms up; a result is the median over the other rounds, shown as a ratio to a baseline run.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

#: a tiny ADM UNet/classifier architecture (8×8) for CPU runs
TINY = dict(image_size=8, in_channels=3, model_channels=32, num_res_blocks=1, attention_resolutions=[2],
            channel_mult=[1, 1], num_head_channels=8, use_scale_shift_norm=True, resblock_updown=True)


def time_interleaved(runs: dict[str, Callable[[int], object]], repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of ``run(round)`` for every run, ``repeats`` rounds after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(repeats + 1):
        for name, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run(rep)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if rep:
                times[name].append(time.perf_counter() - start)
    return times


def write_ratio_table(out: Path, title: str, label: str, times: dict[str, list[float]], baseline: str,
                      device: torch.device, digits: int = 3) -> None:
    """Print and write ``out``: the median loop time of each run and its ratio to ``baseline``, plus raw seconds."""
    env = {"torch": torch.__version__, "device": torch.cuda.get_device_name(device) if device.type == "cuda"
           else f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"}
    base = statistics.median(times[baseline])
    lines = [f"# {title}, {env['device']}, torch {env['torch']}", "",
             f"| {label} | median loop time (s) | ratio to {baseline} |", "|---|---|---|"]
    lines += [f"| {n} | {statistics.median(v):.3f} | {statistics.median(v) / base:.{digits}f} |" for n, v in times.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n```json\n" + json.dumps({"env": env, "seconds": times}, indent=1) + "\n```\n")
