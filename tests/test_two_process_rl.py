"""RL on two CPU processes through the pipeline's launcher (`python -m videoreasoner.training.launch rl`).

1. Plain GRPO (variant `grpo`: group-std advantages, KL to the reference) on 2 processes under
   `accelerate launch` against 1 process, same global batch (4 completions of one prompt a step: 2 per
   rank vs 4 on one process) and seed: the per-step reward, KL and loss agree within RTOL/ATOL, and only
   rank 0 saves models/rl (model_io's log line) and opens the MLflow run.
   TRL seeds each rank's sampling apart (`set_seed(seed, device_specific=True)`), so sampled completions
   differ with the process count by design. The test makes sampling independent of the split instead:
   Gumbel-max sampling (exact sampling from the softmax at temperature 1) whose noise is keyed on the
   completion's global row index and position (SITECUSTOMIZE; without it the step-1 reward was 1.450 on
   one process vs 1.425 on two). The completions then match, and what is compared is the training
   itself: rewards gathered across ranks, group advantages, DDP's gradient mean (the KL of steps 2 and 3
   measures the weights that steps 1 and 2 produced).
2. The project's default variant (params.yaml rl.variant) on 2 DeepSpeed ZeRO-3 processes: both ranks
   finish; models/rl holds whole tensors (model_io loads it; every tensor has models/sft's name and
   shape) that RL changed; one MLflow run.
   Before the fix rl loaded its model after building its ZeRO-3 config (so under zero.Init), and
   transformers 5.23 saved the weights as `model.model.*` where every other save writes `model.*`.

The reward is helpers_world's distinct_characters (varies within a group even for an untrained model, so
the weights change); SITECUSTOMIZE registers it in every process of the job.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers_ranks import free_port
from helpers_world import TINY_SIZES, VIDEO, make_workspace

ROOT = Path(__file__).resolve().parents[1]
# Measured (3 steps, 2 vs 1 process): rewards, reward std and losses equal to the last digit, KL at most
# 1.8e-6 apart (relative; float32 sums in another order). ATOL: step 1's loss is 0 up to rounding (3.7e-8).
RTOL, ATOL = 1e-4, 1e-6
SAVED_RL = "saved model and processor to models/rl"  # model_io's log line, once per save
GENERATIONS = 4
# Loaded by every Python process of the job (first on PYTHONPATH). VR_TEST_RL_REWARD registers the test
# reward; VR_TEST_ROW_KEYED_SAMPLING replaces the sampling as described above. A generate call's rows are
# the global rows (call * world + rank) * n ... + n - 1: RepeatSampler gives rank r the r-th slice of
# each step's global batch, and every rank generates once a step.
SITECUSTOMIZE = """
import os
if os.environ.get("VR_TEST_RL_REWARD"):
    import helpers_world, videoreasoner.training.rewards as rewards
    rewards.REGISTRY["distinct_characters"] = helpers_world.distinct_characters_reward
if os.environ.get("VR_TEST_ROW_KEYED_SAMPLING"):
    import copy, torch, transformers
    from transformers import LogitsProcessor, LogitsProcessorList

    class RowKeyedGumbel(LogitsProcessor):
        def __init__(self, first_row):
            self.first_row = first_row

        def __call__(self, input_ids, scores):
            noise = [torch.rand(scores.shape[1], generator=torch.Generator().manual_seed(
                (self.first_row + i) * 100003 + input_ids.shape[1])) for i in range(scores.shape[0])]
            u = torch.stack(noise).clamp(1e-10, 1 - 1e-7).to(scores.dtype)
            return scores - torch.log(-torch.log(u))  # then argmax: a sample from softmax(scores)

    calls = [0]
    generate = transformers.GenerationMixin.generate

    def keyed_generate(self, *args, generation_config=None, **kwargs):
        import torch.distributed as dist
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        n = kwargs["input_ids"].shape[0]
        config = copy.deepcopy(generation_config)
        config.do_sample = False
        keyed = LogitsProcessorList([RowKeyedGumbel((calls[0] * world + rank) * n)])
        calls[0] += 1
        return generate(self, *args, generation_config=config, logits_processor=keyed, **kwargs)
    transformers.GenerationMixin.generate = keyed_generate
"""


def _workspace(root: Path) -> Path:
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    make_workspace(root, videos={"train": 2})
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), read_jsonl(root / "data/validated/train.jsonl"),
                                         VideoConfig.from_params(VIDEO)), root / "models/sft")
    return root


def _rl(root: Path, site: Path, rl: dict, compute: dict, keyed_sampling: bool) -> str:
    """Run the rl stage through the launcher in `root`; return its output (stdout + stderr)."""
    rl = {"bf16": False, "fp16": False, "activation_checkpointing": False, "max_steps": 3,
          "num_generations": GENERATIONS, "max_completion_length": 8, "max_records": 4, "learning_rate": 1e-2,
          "logging_steps": 1, "save_strategy": "no", "seed": 0, "use_cpu": True, "disable_tqdm": True, **rl}
    rewards = [{"name": "distinct_characters", "weight": 1.0, "kwargs": {}}]
    (root / "params.yaml").write_text(yaml.safe_dump({"video": VIDEO, "rl": rl, "rewards": rewards,
                                                      "compute": compute}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "tests"), str(ROOT)]),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db", "VR_TEST_RL_REWARD": "1"}
    if keyed_sampling:
        env["VR_TEST_ROW_KEYED_SAMPLING"] = "1"
    done = subprocess.run([sys.executable, "-m", "videoreasoner.training.launch", "rl"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=420)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    return log


def _one_mlflow_run(root: Path) -> bool:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    return len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == 1


def _curves(root: Path) -> dict[str, list[float]]:
    with open(root / "reports/rl/curves.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {key: [float(r[key]) for r in rows] for key in ("step", "reward", "reward_std", "kl", "loss")}


@pytest.fixture
def site(tmp_path) -> Path:
    (tmp_path / "site").mkdir()
    (tmp_path / "site/sitecustomize.py").write_text(SITECUSTOMIZE)
    return tmp_path / "site"


@pytest.mark.slow
def test_two_process_grpo_under_accelerate_matches_one_process(tmp_path, site):
    curves = {}
    for n in (1, 2):
        root = _workspace(tmp_path / f"p{n}")
        compute = {"launcher": "python", "num_processes": 1}
        if n > 1:
            compute = {"launcher": "accelerate", "num_processes": n, "main_process_port": free_port(),
                       "accelerate_config": str(ROOT / "infra/accelerate/multi_gpu.yaml")}
        log = _rl(root, site, {"variant": "grpo", "per_device_train_batch_size": GENERATIONS // n}, compute, True)
        curves[n] = _curves(root)
        print(f"{n} process(es): {curves[n]}")
    assert "--num_processes 2" in log
    one, two = curves[1], curves[2]
    assert one["step"] == two["step"] == [1.0, 2.0, 3.0]
    assert len(set(one["reward"])) > 1 and all(s > 0 for s in one["reward_std"]), "rewards vary: advantages"
    assert all(k > 0 for k in one["kl"][1:]), "steps 1 and 2 moved the policy away from the reference"
    for key in ("reward", "reward_std", "kl", "loss"):
        assert two[key] == pytest.approx(one[key], rel=RTOL, abs=ATOL), key
    assert _one_mlflow_run(tmp_path / "p2") and log.count(SAVED_RL) == 1  # rank 0's only
    assert (tmp_path / "p2/models/rl/model.safetensors").is_file()


@pytest.mark.slow
def test_two_process_rl_under_zero3_saves_whole_weights(tmp_path, site):
    from safetensors.torch import load_file

    from videoreasoner.training.model_io import load_model_and_processor

    root = _workspace(tmp_path / "ws")
    compute = {"launcher": "deepspeed", "num_processes": 2, "main_process_port": free_port(),
               "deepspeed_config": str(ROOT / "infra/deepspeed/zero3.json")}
    log = _rl(root, site, {"per_device_train_batch_size": GENERATIONS // 2}, compute, False)
    assert log.count("exits successfully") == 2 and "num_local_procs=2" in log
    metrics = json.loads((root / "reports/rl/metrics.json").read_text())
    default = yaml.safe_load((ROOT / "params.yaml").read_text())["rl"]["variant"]
    assert metrics["variant"] == default and metrics["steps"] == 3 and metrics["deepspeed_zero_stage"] == 3
    assert _one_mlflow_run(root) and log.count(SAVED_RL) == 1
    load_model_and_processor(root / "models/rl")  # refuses missing or reshaped tensors
    sft = load_file(root / "models/sft/model.safetensors")
    final = load_file(root / "models/rl/model.safetensors")
    # Whole tensors (not ZeRO-3's empty partitions) under the names every other save writes.
    assert final.keys() == sft.keys() and all(final[k].shape == sft[k].shape for k in sft)
    assert any(not (final[k] == sft[k]).all() for k in sft), "rl must have changed the weights"
