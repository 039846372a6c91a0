"""infra/multinode.md's two-node DeepSpeed command (one pod per node, no SSH), run as the document writes
it: its hostfile block and its command block are read from the document, and only the substitutions
of SUBSTITUTIONS (which the document states) are made, so the document and this test cannot drift.

Two launchers on one machine play the two nodes (node ranks 0 and 1, one CPU process each, gloo over
127.0.0.1) and train 2 steps of sft on the tiny model under ZeRO-2: each node's launcher reports its node
rank, both ranks check that they read the same records, and only rank 0 writes the model and the
MLflow run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers_ranks import free_port
from helpers_world import TINY_SIZES, VIDEO, make_workspace, trl_params

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "infra/multinode.md"
PORT = "{port}"
# What the document names for a GPU cluster -> what one CPU machine has; each must occur in the blocks.
SUBSTITUTIONS = {"slots=8": "slots=1", "--num_gpus 8": "--num_gpus 1",
                 "videoreasoner-0.videoreasoner": "127.0.0.1", "--master_port 29500": f"--master_port {PORT}",
                 "stages.rl": "stages.sft"}


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(info string, text) of every fenced code block, in document order."""
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", markdown, re.S | re.M)]


def doc_blocks() -> tuple[str, str]:
    """The hostfile block naming the pods and the command every pod runs."""
    blocks = fenced_blocks(DOC.read_text(encoding="utf-8"))
    hostfiles = [text for _, text in blocks if "videoreasoner-0 slots=" in text]
    commands = [text for info, text in blocks if info == "bash" and "--no_ssh" in text and "--node_rank" in text]
    assert len(hostfiles) == 1 and len(commands) == 1, "infra/multinode.md: one pod hostfile and one pod command"
    return hostfiles[0], commands[0]


def substituted(text: str, port: int) -> str:
    used = [old for old in SUBSTITUTIONS if old in text]
    for old in used:
        text = text.replace(old, SUBSTITUTIONS[old].replace(PORT, str(port)))
    return text, used


def test_the_document_has_the_blocks_the_test_substitutes():
    hostfile, command = doc_blocks()
    _, in_hostfile = substituted(hostfile, 0)
    _, in_command = substituted(command, 0)
    assert sorted(in_hostfile + in_command) == sorted(SUBSTITUTIONS), "a substitution no longer matches the document"
    assert command.startswith("deepspeed ") and '"$JOB_COMPLETION_INDEX"' in command


@pytest.mark.slow
def test_two_node_command_of_the_document_trains_on_one_machine(tmp_path):
    import mlflow

    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    root = make_workspace(tmp_path, videos={"train": 2})
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), read_jsonl(root / "data/validated/train.jsonl"),
                                         VideoConfig.from_params(VIDEO)), root / "models/base")
    compute = {"launcher": "deepspeed", "num_processes": 2, "deepspeed_config": str(ROOT / "infra/deepspeed/zero2.json")}
    sft = trl_params(max_steps=2, per_device_train_batch_size=1, ddp_timeout=120)  # a failed node fails the other
    (root / "params.yaml").write_text(yaml.safe_dump({"video": VIDEO, "sft": sft, "compute": compute}))
    port = free_port()
    hostfile, command = (substituted(block, port)[0] for block in doc_blocks())
    (root / "infra/deepspeed").mkdir(parents=True)
    (root / "infra/deepspeed/hostfile").write_text(hostfile)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    nodes = [subprocess.Popen(["bash", "-c", command], cwd=root, env={**env, "JOB_COMPLETION_INDEX": str(rank)},
                              stdout=open(root / f"node{rank}.log", "w"), stderr=subprocess.STDOUT) for rank in (0, 1)]
    try:
        codes = [node.wait(timeout=420) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    logs = [(root / f"node{rank}.log").read_text(errors="replace") for rank in (0, 1)]
    assert codes == [0, 0], "\n".join(log[-3000:] for log in logs)
    for rank, log in enumerate(logs):
        assert f"nnodes=2, num_local_procs=1, node_rank={rank}" in log, log[-2000:]
        assert "all 2 ranks read the same training records" in log
    assert "'loss'" in logs[0]
    assert yaml.safe_load((root / "reports/sft/metrics.json").read_text())["steps"] == 2
    load_model_and_processor(root / "models/sft")
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == 1  # rank 0's only
