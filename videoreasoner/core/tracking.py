"""MLflow, in one small place: a run per stage, tagged with what reproduces it; params, metrics, curves.

Tracking URI from MLFLOW_TRACKING_URI, default `sqlite:///mlflow/mlflow.db` with artifacts under
mlflow/artifacts/. Telemetry is off (videoreasoner.core.telemetry). Tags: git commit, the
stage's dvc.lock entry hash, the pipeline run id from PIPELINE_RUN_ID when a flow sets it, and the DVC
experiment's name and baseline commit inside `dvc exp run` (`dvc_exp_name`, `dvc_exp_baseline_rev`); a stage
run nests under MLFLOW_PARENT_RUN_ID (the flow's parent run) when that is set.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401
from videoreasoner.core.machine import machine

log = logging.getLogger(__name__)
DEFAULT_URI = "sqlite:///mlflow/mlflow.db"
ARTIFACTS_DIR = Path("mlflow/artifacts")
EXPERIMENT = "videoreasoner"


_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """`http://user:secret@host` -> `http://host`: errors and logs never carry credentials."""
    return _CREDENTIALS.sub("", text)


def workspace_root() -> Path:
    """The DVC workspace the stage belongs to: DVC_ROOT, which DVC sets for every stage command, and which a
    queued `dvc exp run` points at the workspace it was queued from while the stage runs in a temporary
    copy (.dvc/tmp/exps/): its MLflow runs must land in that workspace's store, not in the deleted copy.
    The current directory when DVC did not start the process (`vr <stage>`, tests)."""
    return Path(os.environ.get("DVC_ROOT") or ".")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the embedded store of `workspace_root()` (DEFAULT_URI outside DVC)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = os.environ.get("DVC_ROOT")
    return f"sqlite:///{Path(root).resolve() / 'mlflow/mlflow.db'}" if root else DEFAULT_URI


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_lock_hash(stage: str, lock: Path = Path("dvc.lock")) -> str:
    """sha256 of the stage's dvc.lock entry (deps, params, outs hashes), or 'none' before the first repro.

    DVC writes dvc.lock after the stage's command, so inside a stage this is the previous run's entry;
    the Prefect flow re-tags each stage run with the fresh entry once `dvc repro` has finished."""
    if not lock.is_file():
        return "none"
    import yaml

    entry = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}).get(stage)
    if entry is None:
        return "none"
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Set by `dvc exp run` (workspace or queue) in every stage command's environment.
DVC_EXP_ENV = {"DVC_EXP_NAME": "dvc_exp_name", "DVC_EXP_BASELINE_REV": "dvc_exp_baseline_rev"}


def dvc_experiment_tags() -> dict[str, str]:
    """{"dvc_exp_name": ..., "dvc_exp_baseline_rev": ...} inside a `dvc exp run`, else {}: the MLflow runs of
    an experiment carry its name, so `dvc exp show` and the MLflow UI (filter `tags.dvc_exp_name = 'x'`)
    point at each other."""
    return {tag: os.environ[var] for var, tag in DVC_EXP_ENV.items() if os.environ.get(var)}


_METRIC_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\- /:]")


def metric_name(name: str) -> str:
    """MLflow accepts only [A-Za-z0-9_.- /:] in keys: `temporal_R1@0.5` -> `temporal_R1_0.5`."""
    return _METRIC_NAME_BAD.sub("_", name)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Run:
    """A thin handle on the active MLflow run (or a no-op when tracking is disabled)."""

    def __init__(self, mlflow_module=None):
        self._mlflow = mlflow_module

    @property
    def active(self) -> bool:
        return self._mlflow is not None

    def log_params(self, params: dict[str, Any]) -> None:
        if self._mlflow:
            flat = {metric_name(k): str(v)[:6000] for k, v in _flatten(params).items()}
            self._mlflow.log_params(flat)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._mlflow:
            numeric = {metric_name(k): float(v) for k, v in metrics.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self._mlflow.log_metrics(numeric, step=step)

    def log_artifact(self, path: str | os.PathLike) -> None:
        if self._mlflow:
            self._mlflow.log_artifact(str(path))


@contextlib.contextmanager
def stage_run(stage: str, params: dict[str, Any] | None = None, enabled: bool = True) -> Iterator[Run]:
    """Open an MLflow run named after the stage; params are logged flattened (`sft.learning_rate`)."""
    if not enabled:
        yield Run(None)
        return
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        artifacts = workspace_root() / ARTIFACTS_DIR
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts.resolve().as_uri())
    mlflow.set_experiment(EXPERIMENT)
    tags = {"stage": stage, "git_commit": git_commit(), "dvc_lock_hash": dvc_lock_hash(stage),
            "pipeline_run_id": os.environ.get("PIPELINE_RUN_ID", ""), **dvc_experiment_tags(),
            **{f"machine.{k}": str(v) for k, v in machine().items()}}
    parent = os.environ.get("MLFLOW_PARENT_RUN_ID") or None
    with mlflow.start_run(run_name=stage, tags=tags, parent_run_id=parent) as active:
        log.info("MLflow run %s (%s)", active.info.run_id, redact(uri))
        run = Run(mlflow)
        if params:
            run.log_params(params)
        yield run


def trainer_callback(run: Run):
    """A transformers TrainerCallback that logs the trainer's scalars (loss, lr, grad norm) as curves."""
    from transformers import TrainerCallback

    class _MlflowCurves(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                run.log_metrics({f"train/{k}": v for k, v in logs.items()}, step=state.global_step)

    return _MlflowCurves()
