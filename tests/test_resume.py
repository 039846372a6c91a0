"""Crash-resume: an sft run killed (SIGKILL) after a checkpoint continues its step counter when re-run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stages.bootstrap import BootstrapRun
from stages.bootstrap import run as bootstrap
from stages.train_common import last_checkpoint
from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace, trl_params

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 16


def _start(workspace: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{workspace}/mlflow.db"}
    return subprocess.Popen([sys.executable, "-m", "stages.sft"], cwd=workspace, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_killed_sft_run_resumes_from_its_last_checkpoint(tmp_path):
    import mlflow

    ws = make_workspace(tmp_path)
    bootstrap(BootstrapRun(model={"base": "tiny", "tiny": TINY_SIZES}, video=VIDEO,
                           train_file=ws / "data/validated/train.jsonl", video_root=ws,
                           out_dir=ws / "models/base", report_path=ws / "reports/bootstrap.json", tracking=False))
    sft = {**trl_params(MAX_STEPS), "save_strategy": "steps", "save_steps": 2}
    params = {"sft": sft, "video": VIDEO, "compute": {"dtype": "float32"}}
    (ws / "params.yaml").write_text(yaml.safe_dump(params))

    proc = _start(ws)
    deadline = time.monotonic() + 240
    try:
        while last_checkpoint(ws / "checkpoints/sft") is None:
            assert proc.poll() is None, f"sft exited before its first checkpoint:\n{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = int(last_checkpoint(ws / "checkpoints/sft").name.split("-")[1])
    assert 2 <= killed_at < MAX_STEPS and not (ws / "models/sft").exists()

    proc = _start(ws)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    metrics = json.loads((ws / "reports/sft/metrics.json").read_text())
    assert metrics["steps"] == MAX_STEPS
    assert metrics["resumed_from_step"] >= killed_at
    mlflow.set_tracking_uri(f"sqlite:///{ws}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["videoreasoner"], order_by=["start_time ASC"])
    history = mlflow.MlflowClient().get_metric_history(runs.iloc[-1]["run_id"], "train/loss")
    steps = sorted(m.step for m in history)
    assert steps[0] == metrics["resumed_from_step"] + 1 and steps[-1] == MAX_STEPS
