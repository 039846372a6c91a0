"""Where MLflow tracks: MLFLOW_TRACKING_URI, else the workspace's embedded sqlite store, and the one
experiment every stage, the flow and the registry log to."""
from __future__ import annotations

import os
from pathlib import Path

from flows.retries import retrying


def tracking_uri(repo: str | Path = ".") -> str:
    """MLFLOW_TRACKING_URI, else the embedded sqlite store of `repo`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(repo).resolve() / 'mlflow' / 'mlflow.db'}"


def tracking_setup(repo: str | Path = ".") -> tuple[str, str]:
    """Point MLflow at MLFLOW_TRACKING_URI, else the embedded sqlite store of `repo`; returns (uri,
    experiment id) of the experiment every stage logs to (artifacts under <repo>/mlflow/artifacts)."""
    import mlflow

    from videoreasoner.core.tracking import ARTIFACTS_DIR, EXPERIMENT

    repo = Path(repo).resolve()
    uri = tracking_uri(repo)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)

    def get_or_create() -> str:  # idempotent, so it may be retried
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            artifacts = None
            if not uri.startswith(("http://", "https://")):  # a server chooses its own artifact root
                (repo / ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
                artifacts = (repo / ARTIFACTS_DIR).as_uri()
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
        return mlflow.set_experiment(EXPERIMENT).experiment_id

    return uri, retrying(f"opening experiment {EXPERIMENT!r}", get_or_create)


def mlflow_client():
    """A client of the tracking URI set now (MLflow imported only when a command needs it)."""
    from mlflow import MlflowClient

    return MlflowClient()
