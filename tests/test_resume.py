"""Crash-resume: a training stage killed (SIGKILL) between two checkpoints resumes with the checkpoint's
weights (compared tensor by tensor with what transformers' from_pretrained reads from it), continues its
step counter when re-run, and loses at most one checkpoint interval (`save_steps`) of work.

The killed run is its own process (`python -m stages.<stage>`, as `dvc repro` starts it); the re-run is
the stage's `main()` in the test process (already holding the libraries: tens of seconds less). MLflow
logs to a sqlite store in the workspace: the killed run's logged steps say how far it got, so the work
lost is measured, not assumed.
"""
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from stages.bootstrap import BootstrapRun
from stages.bootstrap import run as bootstrap
from videoreasoner.training.rewards import DEFAULT_REWARDS, REGISTRY
from videoreasoner.training.checkpoints import checkpoint_step, last_checkpoint
from tests.helpers_world import TINY_SIZES, VIDEO, distinct_characters_reward, make_workspace, trl_params

ROOT = Path(__file__).resolve().parents[1]
SFT_STEPS, SFT_SAVE = 8, 2
RL_STEPS, RL_SAVE = 4, 2
RL = {"bf16": False, "fp16": False, "activation_checkpointing": False, "max_steps": RL_STEPS,
      "per_device_train_batch_size": 2, "num_generations": 2, "max_completion_length": 8, "learning_rate": 1e-3,
      "logging_steps": 1, "save_strategy": "steps", "save_steps": RL_SAVE, "seed": 0, "use_cpu": True,
      "disable_tqdm": True, "max_records": 6}


def _start(workspace: Path, stage: str, pause_after: int) -> subprocess.Popen:
    """The stage as its own process; its log goes to a file (a full pipe would stall it).

    Once step `pause_after` is done (logged, and saved if it was a save step), the stage writes
    `paused` in the workspace and waits there before beginning the next step, so the kill lands
    inside the checkpoint interval however fast the machine is (a kill timed by polling was once
    too late: the last checkpoint had already been written)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{workspace}/mlflow.db",
           "PYTHONUNBUFFERED": "1"}
    log = open(workspace / f"{stage}.log", "a")
    # The stage's main, with the test reward that changes an untrained model's weights (helpers_world),
    # and its MLflow callback extended to pause before step pause_after + 1.
    code = ("import sys, videoreasoner.training.rewards as r, tests.helpers_world as h; "
            f"r.REGISTRY['distinct_characters'] = h.distinct_characters_reward; import stages.{stage} as m; "
            f"m.trainer_callback = h.pausing_callback(m.trainer_callback, {pause_after}, 'paused'); "
            "sys.exit(m.main())")
    return subprocess.Popen([sys.executable, "-c", code], cwd=workspace, env=env, stdout=log, stderr=subprocess.STDOUT)


def _log_tail(workspace: Path, stage: str) -> str:
    return (workspace / f"{stage}.log").read_text(errors="replace")[-3000:]


def _stage_runs(workspace: Path, stage: str):
    """The stage's MLflow runs, oldest first."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workspace}/mlflow.db")
    return mlflow.search_runs(experiment_names=["videoreasoner"], filter_string=f"tags.stage = '{stage}'",
                              order_by=["start_time ASC"])


def _logged_steps(workspace: Path, run_id: str) -> list[int]:
    import mlflow

    history = mlflow.MlflowClient(f"sqlite:///{workspace}/mlflow.db").get_metric_history(run_id, "train/loss")
    return sorted(m.step for m in history)


def _kill_mid_interval(proc: subprocess.Popen, workspace: Path, stage: str) -> int:
    """SIGKILL the stage once it has paused after the step past a checkpoint (see `_start`), so the kill
    lands inside the next interval, losing work; returns the newest complete checkpoint's step."""
    deadline = time.monotonic() + 240
    try:
        while not (workspace / "paused").exists():
            assert proc.poll() is None, f"{stage} exited before pausing:\n{_log_tail(workspace, stage)}"
            assert time.monotonic() < deadline, f"{stage} did not pause within 240 s"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return checkpoint_step(last_checkpoint(workspace / "checkpoints" / stage))


def _assert_resumed_losing_at_most_one_interval(workspace: Path, stage: str, metrics: dict, killed_at: int,
                                                steps: int, save_steps: int) -> None:
    """The re-run resumed from the newest complete checkpoint, ran exactly the remaining steps, and the
    killed run had done at most `save_steps` steps beyond that checkpoint."""
    runs = _stage_runs(workspace, stage)
    assert len(runs) == 2, runs
    reached = max(_logged_steps(workspace, runs.iloc[0]["run_id"]))
    assert metrics["resumed_from_step"] == killed_at, (metrics, killed_at)
    assert 0 <= reached - killed_at <= save_steps, f"killed at step {reached}, resumed from {killed_at}"
    assert metrics["steps"] == steps
    resumed = _logged_steps(workspace, runs.iloc[1]["run_id"])  # exactly the steps after the checkpoint
    assert resumed == list(range(killed_at + 1, steps + 1)), resumed
    assert not (workspace / "checkpoints" / stage).exists(), "checkpoints must go once the final weights are saved"


def _weights_of(model_dir: Path) -> dict:
    """A checkpoint's weights as transformers' own from_pretrained reads them (it maps the legacy key names
    a Trainer checkpoint stores onto the model's): the reference the resumed weights must equal."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rerun(workspace: Path, stage: str, monkeypatch) -> tuple[dict, dict]:
    """The stage's main() as DVC's re-run would call it: in the workspace, logging to its store. Returns its
    metrics and the weights in memory when training began (after the resume loaded the checkpoint)."""
    module = importlib.import_module(f"stages.{stage}")
    at_start: dict = {}
    real_callback = module.trainer_callback

    def callback_with_snapshot(run):
        callback = real_callback(run)

        def on_train_begin(args, state, control, model=None, **kwargs):
            at_start.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        callback.on_train_begin = on_train_begin
        return callback

    monkeypatch.setattr(module, "trainer_callback", callback_with_snapshot)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workspace}/mlflow.db")
    assert module.main() == 0
    return json.loads((workspace / f"reports/{stage}/metrics.json").read_text()), at_start


def _assert_resumed_weights(at_start: dict, checkpoint: dict) -> None:
    """The weights training resumed with are the checkpoint's, tensor by tensor (not the base model's)."""
    import torch

    assert at_start.keys() == checkpoint.keys()
    differ = [k for k in checkpoint if not torch.equal(at_start[k], checkpoint[k])]
    assert not differ, f"{len(differ)} of {len(checkpoint)} tensors differ from the checkpoint, e.g. {differ[:3]}"


@pytest.mark.slow
def test_killed_sft_run_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path)
    bootstrap(BootstrapRun(model={"base": "tiny", "tiny": TINY_SIZES}, video=VIDEO,
                           train_file=ws / "data/validated/train.jsonl", video_root=ws,
                           out_dir=ws / "models/base", report_path=ws / "reports/bootstrap.json", tracking=False))
    sft = {**trl_params(SFT_STEPS), "save_strategy": "steps", "save_steps": SFT_SAVE}
    params = {"sft": sft, "video": VIDEO, "compute": {"dtype": "float32"}}
    (ws / "params.yaml").write_text(yaml.safe_dump(params))

    killed_at = _kill_mid_interval(_start(ws, "sft", pause_after=SFT_SAVE + 1), ws, "sft")
    assert killed_at == SFT_SAVE and not (ws / "models/sft").exists()
    checkpoint = _weights_of(ws / f"checkpoints/sft/checkpoint-{killed_at}")
    metrics, at_start = _rerun(ws, "sft", monkeypatch)
    _assert_resumed_weights(at_start, checkpoint)
    _assert_resumed_losing_at_most_one_interval(ws, "sft", metrics, killed_at, SFT_STEPS, SFT_SAVE)


@pytest.mark.slow
def test_killed_rl_run_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    ws = make_workspace(tmp_path, videos={"train": 2})
    records = read_jsonl(ws / "data/validated/train.jsonl")
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), records, VideoConfig.from_params(VIDEO)),
                             ws / "models/sft")  # what the sft stage would leave
    rewards = [*DEFAULT_REWARDS, {"name": "distinct_characters", "weight": 1.0, "kwargs": {}}]
    params = {"rl": RL, "rewards": rewards, "video": VIDEO, "compute": {"dtype": "float32"}}
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setitem(REGISTRY, "distinct_characters", distinct_characters_reward)

    killed_at = _kill_mid_interval(_start(ws, "rl", pause_after=RL_SAVE + 1), ws, "rl")
    assert killed_at == RL_SAVE and not (ws / "models/rl").exists()
    checkpoint = _weights_of(ws / f"checkpoints/rl/checkpoint-{killed_at}")
    base = _weights_of(ws / "models/sft")  # the weights RL started from
    assert any(not torch.equal(base[k], v) for k, v in checkpoint.items()), "the checkpoint must hold trained weights"
    metrics, at_start = _rerun(ws, "rl", monkeypatch)
    _assert_resumed_weights(at_start, checkpoint)
    _assert_resumed_losing_at_most_one_interval(ws, "rl", metrics, killed_at, RL_STEPS, RL_SAVE)
    assert (ws / "models/rl/config.json").is_file() and (ws / "reports/rl/curves.csv").is_file()
