"""A throw-away git + DVC workspace on the smallest profile that still runs every stage: a copy of the
checkout's files (committed or not, ignored ones left out), params shrunk so the world is a handful of
clips and training a step or two, committed as the baseline's first commit. Shared by the slow tests of
experiments, sweeps and the remote (tests/test_dvc_experiments.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from videoreasoner.core.paths import PRETRAINED_BASE

ROOT = Path(__file__).resolve().parents[1]
# Every key exists in params.yaml (a section a stage does not read is never touched).
TINY_PROFILE = {
    "data.synthetic.videos": {"train": 4, "val": 2, "test": 2},
    "model.alignment.max_steps": 1,
    "sft.max_steps": 1, "sft.save_steps": 1, "sft.logging_steps": 1, "sft.loss_gap_items": 0,
    "rl.max_steps": 1, "rl.num_generations": 2, "rl.per_device_train_batch_size": 2,
    "rl.max_completion_length": 8, "rl.max_records": 2, "rl.logging_steps": 1, "rl.save_steps": 1,
    "tts.max_items_per_type": 1, "tts.strategies": ["greedy"], "tts.n": [2], "tts.frames": [4],
    "tts.decoding.max_new_tokens": 8, "tts.n_boot": 10,
    "eval.max_items_per_type": 1, "eval.decoding.max_new_tokens": 8, "eval.n_boot": 10,
    "eval.controls": ["blank"], "eval.protocols": ["strict"],
}
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t"}


def tool_env() -> dict[str, str]:
    """The environment of every command: this interpreter's tools first, no telemetry, a git identity,
    the workspace's own MLflow store."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", **GIT_IDENTITY)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def sh(cwd: Path, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """One shell command line as a user types it; fails the test with its output when it fails."""
    done = subprocess.run(command, shell=True, cwd=cwd, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
    return done


def set_params(path: Path, profile: dict) -> None:
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in profile.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]  # a KeyError here: the profile names a key params.yaml lost
        assert key in node, f"params.yaml has no {dotted}"
        node[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def make_workspace(dest: Path) -> Path:
    """The checkout's files in `dest` (a new git repository, one commit), on the tiny profile."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file() and rel != "dvc.lock":  # the checkout's baseline is not this profile's
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    set_params(dest / "params.yaml", TINY_PROFILE)
    shipped = dest / PRETRAINED_BASE
    if not shipped.exists():  # a checkout before the shipped base is committed: the frozen pretrain stage
        shipped.mkdir(parents=True)  # only needs its output present; `model.base: tiny` never reads it
        (shipped / "README").write_text("stand-in for the shipped base (tests/helpers_dvc_workspace.py)\n")
    sh(dest, "git init -q && git add -A && git commit -q -m 'tiny profile'")
    return dest
