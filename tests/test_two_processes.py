"""SFT on two CPU processes (accelerate launch, gloo) against one process: same data, same global batch
(1 row per process vs 2 rows on one process), same seed; the loss curve agrees within LOSS_RTOL and
only rank 0 opens the MLflow run and writes.

Before the rank check every process opened its own MLflow run on the same store, and two processes
creating the sqlite store at once crashed the run ("duplicate column name: step").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers_world import TINY_SIZES, VIDEO, make_workspace, trl_params
from videoreasoner.training.launch import launch_rank

ROOT = Path(__file__).resolve().parents[1]
# Measured: per-step losses 6.278/6.182/6.016 (one process) vs 6.276/6.181/6.003 (two), at most 0.22 %
# apart: each process averages its loss over its own tokens before DDP averages the gradients.
LOSS_RTOL = 0.01


def test_launch_rank_is_the_launchers_rank():
    assert launch_rank({}) == 0 and launch_rank({"RANK": "1"}) == 1


def _sft(root: Path, processes: int) -> tuple[dict, str]:
    compute = {"launcher": "python", "num_processes": 1}
    if processes > 1:
        compute = {"launcher": "accelerate", "num_processes": processes,
                   "accelerate_config": str(ROOT / "infra/accelerate/multi_gpu.yaml"),
                   "main_process_port": 29511}
    sft = trl_params(max_steps=3, per_device_train_batch_size=2 // processes)
    (root / "params.yaml").write_text(yaml.safe_dump({"video": VIDEO, "sft": sft, "compute": compute}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}
    done = subprocess.run([sys.executable, "-m", "videoreasoner.training.launch", "sft"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-4000:]
    losses = [float(line.split("'loss': '")[1].split("'")[0]) for line in done.stdout.splitlines()
              + done.stderr.splitlines() if line.startswith("{'loss'")]
    return {"metrics": json.loads((root / "reports/sft/metrics.json").read_text()), "losses": losses}, done.stderr


@pytest.mark.slow
def test_two_process_sft_matches_one_process(tmp_path):
    import mlflow

    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    runs = {}
    for n in (1, 2):
        root = make_workspace(tmp_path / f"p{n}", videos={"train": 2})
        save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), read_jsonl(root / "data/validated/train.jsonl"),
                                             VideoConfig.from_params(VIDEO)), root / "models/base")
        runs[n], log = _sft(root, n)
    assert "--num_processes 2" in log
    one, two = runs[1], runs[2]
    assert len(one["losses"]) == len(two["losses"]) == 3 and one["metrics"]["steps"] == two["metrics"]["steps"] == 3
    assert two["losses"] == pytest.approx(one["losses"], rel=LOSS_RTOL)
    assert two["metrics"]["final_loss"] == pytest.approx(one["metrics"]["final_loss"], rel=LOSS_RTOL)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'p2'}/mlflow.db")
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == 1  # rank 0's only
    assert (tmp_path / "p2/models/sft/model.safetensors").is_file()


@pytest.mark.slow
def test_two_process_t_grpo_under_zero2(tmp_path):
    """RL with T-GRPO and the zero-variance filter (both gather across ranks) on 2 DeepSpeed ZeRO-2
    processes: each rank holds 2 of a group's 4 rollouts; both ranks finish, rank 0 alone tracks."""
    import mlflow

    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    root = make_workspace(tmp_path, videos={"train": 2})
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), read_jsonl(root / "data/validated/train.jsonl"),
                                         VideoConfig.from_params(VIDEO)), root / "models/sft")
    rl = {"variant": "grpo", "bf16": False, "fp16": False, "activation_checkpointing": False, "max_steps": 2,
          "per_device_train_batch_size": 2, "num_generations": 4, "max_completion_length": 8, "max_records": 4,
          "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no", "seed": 0, "use_cpu": True,
          "disable_tqdm": True, "temporal_contrast": {"enabled": True}, "skip_zero_variance_groups": True}
    rewards = [{"name": "format", "weight": 0.5, "kwargs": {}}, {"name": "accuracy", "weight": 1.0, "kwargs": {}}]
    compute = {"launcher": "deepspeed", "num_processes": 2, "main_process_port": 29512,
               "deepspeed_config": str(ROOT / "infra/deepspeed/zero2.json")}
    (root / "params.yaml").write_text(yaml.safe_dump({"video": VIDEO, "rl": rl, "rewards": rewards,
                                                      "compute": compute}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}
    done = subprocess.run([sys.executable, "-m", "videoreasoner.training.launch", "rl"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=420)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert log.count("exits successfully") == 2 and "num_local_procs=2" in log
    metrics = json.loads((root / "reports/rl/metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["deepspeed_zero_stage"] == 2
    assert (root / "models/rl/model.safetensors").is_file()
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == 1
