"""Run a function on several CPU processes joined by a gloo process group, as the launchers do.

`run_ranks(case, world, *args)` spawns `world` processes; each joins the group (rank r of world) and
returns `case(*args)`; the results come back in rank order. `case` must be a module-level function
(it is pickled by name into the spawned processes). A rank that raises fails the call with its traceback.
"""
from __future__ import annotations

import pickle
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch.multiprocessing as mp

# A rank left waiting in a collective (its peer died or skipped it) fails after this instead of hanging.
COLLECTIVE_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out: str, case: Callable, args: tuple) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    try:
        result = case(*args)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps(result))


def run_ranks(case: Callable, world: int, *args: Any) -> list[Any]:
    """`case(*args)` on ranks 0..world-1 of one gloo group; their results in rank order."""
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank_main, args=(world, free_port(), out, case, args), nprocs=world, join=True)
        return [pickle.loads(Path(out, f"rank{r}.pkl").read_bytes()) for r in range(world)]
