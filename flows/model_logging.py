"""Log the registered model's MLflow run: the pyfunc of flows/pyfunc_model.py wrapping the model folder
(weights + processor), the TTS policy and the settings, with its params, metrics, pinned requirements
and input signature."""
from __future__ import annotations

import contextlib
import json
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from flows.retries import retrying

REQUIREMENTS = ("mlflow", "torch", "torchvision", "transformers", "av", "numpy", "pandas", "pillow", "pyyaml")


def _requirements() -> list[str]:
    reqs = []
    for name in REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            reqs.append(f"{name}=={metadata.version(name)}")
    return reqs


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    # One of video (a path) and video_b64 (the file's bytes, base64) per request: flows/pyfunc_requests.py
    # checks that; the outputs (answer rows whose `answer` is a letter, a number, a span, a box or a tube)
    # have no MLflow column type, so no output schema is declared.
    inputs = Schema([ColSpec("string", "video", required=False), ColSpec("string", "video_b64", required=False),
                     ColSpec("string", "question"), ColSpec("string", "problem_type", required=False),
                     ColSpec(Array("string"), "options", required=False), ColSpec("string", "id", required=False)])
    return ModelSignature(inputs=inputs)


def log_model_run(model_dir: str | Path, policy: str | Path, metrics: dict[str, float],
                  settings: dict[str, Any] | None, tags: dict[str, str], parent_run_id: str | None,
                  predictor_factory: Callable | None, code_paths: list[str] | None) -> tuple[str, str]:
    """A finished MLflow run holding the pyfunc (model + processor + policy + settings): (run id, model
    uri). Each call is retried on its own; a retried log_model only leaves an unused logged model."""
    import mlflow

    from flows.pyfunc_model import MODEL_CONFIG, VideoReasonerModel
    from videoreasoner.core.tracking import _flatten

    run = retrying("starting the registration run", mlflow.start_run, run_name="register",
                   parent_run_id=parent_run_id, tags=tags)
    with tempfile.TemporaryDirectory() as tmp, run:
        settings_file = Path(tmp) / "settings.json"
        settings_file.write_text(json.dumps(settings or {}, indent=2, sort_keys=True), encoding="utf-8")
        if settings:
            retrying("logging params", mlflow.log_params,
                     {k: str(v)[:6000] for k, v in _flatten(settings).items()})
        retrying("logging metrics", mlflow.log_metrics, metrics)
        info = retrying("logging the pyfunc model", mlflow.pyfunc.log_model,
                        name="model", python_model=VideoReasonerModel(predictor_factory),
                        artifacts={"model": str(model_dir), "policy": str(policy), "settings": str(settings_file)},
                        code_paths=code_paths, pip_requirements=_requirements(), signature=_signature(),
                        model_config=MODEL_CONFIG)  # allowed video roots, overridable at load
    return run.info.run_id, info.model_uri
