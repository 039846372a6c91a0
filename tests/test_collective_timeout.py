"""No hang: in a multi-process run, a rank left waiting in a collective by a peer that is alive but stuck
fails after the params' `ddp_timeout` (videoreasoner.training.launch.join_process_group), and the flow
classes that failure as transient.

Two processes start as a launcher starts them (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), build a TRL
config with `use_cpu: true` and set up transformers' distributed state from it, as the trainer does.
Rank 1 then never joins the collective rank 0 starts. Without join_process_group, transformers started
gloo with torch's default timeout (30 min) under use_cpu: rank 0 then waited until rank 1 gave up
(PEER_GIVES_UP_S) and failed with a lost connection instead of a timeout.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch.multiprocessing as mp

from helpers_ranks import free_port

TIMEOUT_S = 3
PEER_GIVES_UP_S = 10 * TIMEOUT_S


def _rank(rank: int, port: int, out: str) -> None:
    import torch
    import torch.distributed as dist
    from trl import SFTConfig

    from videoreasoner.training.launch import join_process_group

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    params = {"use_cpu": True, "ddp_timeout": TIMEOUT_S}
    started = join_process_group(params, SFTConfig)  # as the stages call it, before their config
    args = SFTConfig(output_dir=out, report_to=[], **params)
    assert args.device.type == "cpu" and dist.get_world_size() == 2  # transformers' set-up keeps that group
    result = Path(out, "rank0.json")
    if rank == 1:  # stuck: alive, never in the collective, until rank 0 is done (or long past the timeout)
        deadline = time.monotonic() + PEER_GIVES_UP_S
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        return
    t0 = time.monotonic()
    try:
        dist.all_reduce(torch.ones(1))
        outcome = "completed"
    except RuntimeError as exc:
        outcome = str(exc)
    result.write_text(json.dumps({"started": started, "seconds": time.monotonic() - t0, "outcome": outcome}))


def test_a_collective_with_a_stuck_peer_times_out_after_ddp_timeout(tmp_path):
    from flows.pipeline import is_transient

    mp.spawn(_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    assert rank0["started"], "use_cpu: join_process_group starts the group with the timeout"
    assert "timed out" in rank0["outcome"].lower(), rank0
    assert TIMEOUT_S - 0.5 <= rank0["seconds"] < 3 * TIMEOUT_S, rank0
    assert is_transient(1, [f"[rank0]: RuntimeError: {rank0['outcome']}\n"])


def test_one_process_starts_no_group(monkeypatch):
    from trl import SFTConfig

    from videoreasoner.training.launch import join_process_group

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert join_process_group({"use_cpu": True}, SFTConfig) is False
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert join_process_group({}, SFTConfig) is False  # use_cpu false: transformers passes ddp_timeout itself


RANK_SCRIPT = """
import logging, torch, torch.distributed as dist
from trl import SFTConfig
from videoreasoner.training.launch import join_process_group
logging.basicConfig(level=logging.INFO, format="%(message)s")
assert join_process_group({"use_cpu": True, "ddp_timeout": 60}, SFTConfig)
dist.all_reduce(torch.ones(1))
"""


def test_a_rank_that_finished_closes_its_group_before_exit(tmp_path):
    """Left to interpreter teardown, gloo's threads could abort a rank that had finished (exit 250,
    "terminate called without an active exception"): the group is destroyed at exit."""
    import subprocess
    import sys

    port, root = free_port(), Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", RANK_SCRIPT], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
             for r in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for rank, (proc, out) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, out
        assert f"rank {rank}: process group closed" in out, out
