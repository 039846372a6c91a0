"""The launcher module, the infra configs, and a few SFT and GRPO steps under DeepSpeed ZeRO-2 on the CPU.

The slow test runs the pipeline's own entry points in a workspace: `python -m videoreasoner.training.launch sft`
(accelerate launcher, one process) then `python -m videoreasoner.training.launch rl` (python launcher), each with
compute.deepspeed_config = infra/deepspeed/zero2.json (gloo, one process). DeepSpeed's first start
compiles its shared-memory comms op (~40 s, cached under ~/.cache/torch_extensions afterwards).
"""
from __future__ import annotations

import json
import shutil
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers_world import TINY_SIZES, VIDEO, make_workspace, trl_params
from videoreasoner.training.launch import ComputeConfig, build_command, launch_env

ROOT = Path(__file__).resolve().parents[1]
ZERO2 = str(ROOT / "infra/deepspeed/zero2.json")
SINGLE = str(ROOT / "infra/accelerate/single_process.yaml")


def test_python_launcher_runs_the_stage_module():
    assert build_command("sft", ComputeConfig(), python="py") == ["py", "-m", "stages.sft"]


def test_accelerate_launcher_passes_config_processes_and_port():
    cmd = build_command("rl", ComputeConfig(launcher="accelerate", num_processes=4, accelerate_config=SINGLE,
                                            main_process_port=29600), python="py")
    assert cmd == ["py", "-m", "accelerate.commands.launch", "--config_file", SINGLE, "--num_processes", "4",
                   "--main_process_port", "29600", "-m", "stages.rl"]


def test_deepspeed_launcher_runs_the_module_on_n_gpus():
    cmd = build_command("sft", ComputeConfig(launcher="deepspeed", num_processes=8))
    assert Path(cmd[0]).name == "deepspeed"
    assert cmd[1:] == ["--num_gpus", "8", "--master_port", "29500", "--module", "stages.sft"]


def test_compute_params_are_checked():
    with pytest.raises(ValueError, match="unknown key 'gpus'"):
        ComputeConfig.from_params({"gpus": 2})
    with pytest.raises(ValueError, match="one process"):
        ComputeConfig.from_params({"launcher": "python", "num_processes": 2})
    with pytest.raises(ValueError, match="does not exist"):
        ComputeConfig.from_params({"deepspeed_config": "infra/deepspeed/zero9.json"})
    with pytest.raises(ValueError, match="unknown training stage"):
        build_command("evaluate", ComputeConfig())
    assert ComputeConfig.from_params({"deepspeed_config": ZERO2}).trainer_overrides() == {"deepspeed": ZERO2}
    assert ComputeConfig.from_params(None).trainer_overrides() == {}


def test_single_process_deepspeed_gets_a_rendezvous():
    env = launch_env(ComputeConfig(deepspeed_config=ZERO2), base={})
    assert env["RANK"] == "0" and env["WORLD_SIZE"] == "1" and env["DS_BUILD_OPS"] == "0"
    assert "RANK" not in launch_env(ComputeConfig(), base={})
    assert "RANK" not in launch_env(ComputeConfig(launcher="deepspeed", deepspeed_config=ZERO2), base={})


def test_torch_threads_reach_the_launched_stage():
    assert launch_env(ComputeConfig.from_params({"torch_threads": 1}), base={"OMP_NUM_THREADS": "8"})[
        "OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in launch_env(ComputeConfig.from_params({"torch_threads": None}), base={})
    for bad in (0, "2", 1.5):
        with pytest.raises(ValueError, match="compute.torch_threads"):
            ComputeConfig.from_params({"torch_threads": bad})


def test_infra_configs_parse():
    for stage, name in ((2, "zero2"), (3, "zero3")):
        config = json.loads((ROOT / f"infra/deepspeed/{name}.json").read_text())
        assert config["zero_optimization"]["stage"] == stage
    for path in (ROOT / "infra/accelerate").glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["distributed_type"] in ("NO", "MULTI_GPU")


def run_stage(root: Path, stage: str, compute: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "compute": compute}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}
    done = subprocess.run([sys.executable, "-m", "videoreasoner.training.launch", stage], cwd=root, env=env,
                          capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-4000:]


def monitored_zero2(root: Path) -> str:
    """infra/deepspeed/zero2.json plus DeepSpeed's CSV monitor: the engine itself then records every
    optimizer step it takes (evidence that DeepSpeed, not plain DDP, trained)."""
    config = json.loads(Path(ZERO2).read_text())
    config["csv_monitor"] = {"enabled": True, "output_path": str(root / "ds_monitor"), "job_name": "run"}
    path = root / "zero2_monitored.json"
    path.write_text(json.dumps(config))
    return str(path)


def deepspeed_steps(root: Path) -> int:
    """Optimizer steps the DeepSpeed engine logged (one learning-rate row per step); resets the log."""
    log = root / "ds_monitor/run/Train_Samples_lr.csv"
    steps = len(log.read_text().splitlines()) - 1 if log.is_file() else 0
    log.unlink(missing_ok=True)
    return steps


@pytest.mark.slow
def test_sft_then_grpo_under_zero2_on_cpu(tmp_path):
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    root = make_workspace(tmp_path, videos={"train": 2})
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), read_jsonl(root / "data/validated/train.jsonl"),
                                         VideoConfig.from_params(VIDEO)), root / "models/base")
    zero2 = monitored_zero2(root)
    sft = trl_params(max_steps=2)  # DeepSpeed reaches SFT through compute.deepspeed_config
    rl = {"variant": "grpo", "bf16": False, "fp16": False, "activation_checkpointing": False, "max_steps": 2,
          "per_device_train_batch_size": 2, "num_generations": 2, "max_completion_length": 8, "max_records": 4,
          "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no", "seed": 0,
          "use_cpu": True, "disable_tqdm": True}
    rewards = [{"name": "format", "weight": 0.5, "kwargs": {}}, {"name": "accuracy", "weight": 1.0, "kwargs": {}}]
    (root / "params.yaml").write_text(yaml.safe_dump({"video": VIDEO, "sft": sft, "rl": rl, "rewards": rewards}))

    run_stage(root, "sft", {"launcher": "accelerate", "num_processes": 1, "accelerate_config": SINGLE,
                            "deepspeed_config": zero2})
    assert json.loads((root / "reports/sft/metrics.json").read_text())["steps"] == 2
    assert deepspeed_steps(root) == 2

    run_stage(root, "rl", {"launcher": "python", "num_processes": 1, "deepspeed_config": zero2})
    metrics = json.loads((root / "reports/rl/metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["deepspeed_zero_stage"] == 2
    assert deepspeed_steps(root) == 2
    assert (root / "models/rl/model.safetensors").is_file()


# A training stage whose checkpoints survive its end, as a run killed after its last checkpoint leaves them.
# The RL reward is one that varies within a group (tests/helpers_world.py), so RL changes the weights.
KEEP_CHECKPOINTS = ("import sys, stages.{0} as m, videoreasoner.training.rewards as r, tests.helpers_world as h; "
                    "r.REGISTRY['distinct_characters'] = h.distinct_characters_reward; "
                    "m.finish_checkpoints = lambda *_: None; sys.exit(m.main())")


def _run_keeping_checkpoints(root: Path, stage: str, zero2: str) -> str:
    from videoreasoner.training.launch import ComputeConfig, launch_env

    params = yaml.safe_load((root / "params.yaml").read_text())
    compute = {"launcher": "python", "num_processes": 1, "deepspeed_config": zero2}
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "compute": compute}))
    env = launch_env(ComputeConfig.from_params(compute),
                     base={**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"})
    done = subprocess.run([sys.executable, "-c", KEEP_CHECKPOINTS.format(stage)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "rl"])
def test_resume_under_zero2_is_weight_exact(tmp_path, stage):
    """Under DeepSpeed the engine loads its own checkpoint; the run-time check then compares the weights in
    memory with the checkpoint's, and the resumed run ends with the uninterrupted run's weights."""
    from safetensors.torch import load_file

    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    root = make_workspace(tmp_path, videos={"train": 2})
    model_dir = "models/base" if stage == "sft" else "models/sft"
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), read_jsonl(root / "data/validated/train.jsonl"),
                                         VideoConfig.from_params(VIDEO)), root / model_dir)
    saving = {"save_strategy": "steps", "save_steps": 2, "max_steps": 4, "lr_scheduler_type": "linear"}
    params = {"video": VIDEO, "sft": trl_params(**saving),
              "rl": {"variant": "grpo", "bf16": False, "fp16": False, "activation_checkpointing": False,
                     "per_device_train_batch_size": 2, "num_generations": 2, "max_completion_length": 8,
                     "max_records": 4, "learning_rate": 1e-3, "logging_steps": 1, "seed": 0, "use_cpu": True,
                     "disable_tqdm": True, **saving},
              "rewards": [{"name": "distinct_characters", "weight": 1.0}]}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    _run_keeping_checkpoints(root, stage, ZERO2)
    whole = load_file(root / f"models/{stage}/model.safetensors")
    checkpoints = root / "checkpoints" / stage
    assert (checkpoints / "checkpoint-4").is_dir() and (checkpoints / "checkpoint-2/model.safetensors").is_file()
    shutil.rmtree(checkpoints / "checkpoint-4")
    log = _run_keeping_checkpoints(root, stage, ZERO2)
    assert "in memory equal the checkpoint's" in log and "missing keys" not in log, log[-3000:]
    assert json.loads((root / f"reports/{stage}/metrics.json").read_text())["resumed_from_step"] == 2
    resumed = load_file(root / f"models/{stage}/model.safetensors")
    assert resumed.keys() == whole.keys()
    assert all(torch.allclose(resumed[k], whole[k], rtol=1e-5, atol=1e-6) for k in whole)
    base = load_file(root / f"{model_dir}/model.safetensors")
    assert any(not torch.equal(base[k], whole[k]) for k in whole), f"{stage} must have trained"
