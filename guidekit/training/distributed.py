"""torchrun support: one process per device, each taking its slice of the same global batch."""

from __future__ import annotations

import os

import attrs
import torch
import torch.distributed as dist

from ..errors import InvalidParameterError


@attrs.frozen
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world(device: torch.device) -> World:
    """Join the process group torchrun describes (WORLD_SIZE/RANK), gloo on CPU and nccl on GPU."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InvalidParameterError(f"$WORLD_SIZE is {os.environ['WORLD_SIZE']!r}, not an integer; fix or unset it "
                                    "(torchrun sets it)") from None
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def local_slice(batch_size: int, world: World) -> slice:
    """This rank's rows of a global batch (batch_size must divide evenly)."""
    if batch_size % world.size:
        raise InvalidParameterError(
            f"batch_size {batch_size} does not divide over {world.size} processes: use a multiple of {world.size}"
        )
    per = batch_size // world.size
    return slice(world.rank * per, (world.rank + 1) * per)


def mean_over_world(values: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """Average per-rank metrics so every rank logs the same numbers."""
    if world.size == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / world.size).tolist()))
