"""A model named on the command line, made local: a registry URI, a pyfunc folder or a checkpoint folder.

- `models:/<name>@<alias>` or `models:/<name>/<version>`: resolved and downloaded with MLflow's own API
  (`mlflow.artifacts.download_artifacts`) from the tracking URI the project uses (MLFLOW_TRACKING_URI,
  else the workspace's sqlite store, flows/registry_tracking.py);
- a folder holding an `MLmodel` file: a logged or downloaded pyfunc of flows/pyfunc_model.py;
- a folder holding `config.json`: a save_pretrained checkpoint (e.g. models/rl), with no TTS policy.

`vr predict` and `vr evaluate --model` use it; the stages below only ever see the local folders.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.registry_tracking import tracking_uri


@dataclass(frozen=True)
class LocalModel:
    """uri: what the user named; model_dir: the save_pretrained folder (weights + processor); policy_file:
    the TTS policy the pyfunc applies (None for a bare checkpoint); settings: the params sections the
    model was registered with ({} for a bare checkpoint); pyfunc_dir: the pyfunc folder, if any."""

    uri: str
    model_dir: Path
    policy_file: Path | None
    settings: dict[str, Any]
    pyfunc_dir: Path | None


def is_registry_uri(uri: str) -> bool:
    return uri.startswith("models:/")


def resolve(uri: str, download_to: str | Path | None = None, repo: str | Path = ".") -> LocalModel:
    """The local folders of `uri`. A registry URI is downloaded under `download_to` (None: a temporary
    folder MLflow chooses). Raises FileNotFoundError naming the URI when it is none of the three kinds."""
    if is_registry_uri(uri):
        import mlflow
        import mlflow.artifacts

        mlflow.set_tracking_uri(tracking_uri(repo))
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                    dst_path=None if download_to is None else str(download_to))
        return _from_pyfunc(uri, Path(local))
    path = Path(uri)
    if (path / "MLmodel").is_file():
        return _from_pyfunc(uri, path)
    if (path / "config.json").is_file():
        return LocalModel(uri, path, None, {}, None)
    raise FileNotFoundError(f"--model {uri}: not a registry URI (models:/<name>@<alias> or models:/<name>/<version>), "
                            f"a pyfunc folder (with MLmodel) or a checkpoint folder (with config.json)")


def _from_pyfunc(uri: str, folder: Path) -> LocalModel:
    """The artifacts a pyfunc of flows/pyfunc_model.py was logged with (MLmodel's python_function flavor)."""
    from mlflow.models import Model

    artifacts = Model.load(str(folder)).flavors["python_function"].get("artifacts") or {}
    if "model" not in artifacts or "policy" not in artifacts:
        raise FileNotFoundError(f"--model {uri}: {folder / 'MLmodel'} has no 'model' and 'policy' artifacts "
                                f"(not a model registered by this project)")
    local = {name: folder / entry["path"] for name, entry in artifacts.items()}
    settings = json.loads(local["settings"].read_text(encoding="utf-8")) if "settings" in local else {}
    return LocalModel(uri, local["model"], local["policy"], settings, folder)
