"""Statistics over a whole generation batch when its rows are spread over several processes.

TRL's GRPO sampler repeats each prompt num_generations times and hands consecutive slices of that
global batch to the processes (rank 0 the first len(local) rows, rank 1 the next, ...), so one group's
rollouts can sit on different ranks. TRL gathers the rewards before it normalises them per group; any
other per-group statistic (the zero-variance filter, T-GRPO's ordered and shuffled accuracies) must be
gathered the same way, or each rank would compute it from its own part of the group.

Every function here is the identity on one process (no torch.distributed process group, or a group of
one), and every rank must call it at the same point (they are collectives).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, number of processes) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_objects(items: list[Any]) -> list[Any]:
    """Every rank's `items` (picklable), concatenated in rank order: the global batch's row order."""
    _, size = world()
    if size == 1:
        return list(items)
    parts: list[list[Any] | None] = [None] * size
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]  # type: ignore[union-attr]


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Tensors of equal first dimension on every rank, concatenated along it in rank order."""
    _, size = world()
    if size == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(parts, local.contiguous())
    return torch.cat(parts)


def local_slice(n_local: int) -> slice:
    """This rank's rows of the global batch (rank r holds rows [r·n_local, (r+1)·n_local), end exclusive),
    as TRL slices its gathered advantages."""
    rank, _ = world()
    return slice(rank * n_local, (rank + 1) * n_local)
