"""The registered model: an MLflow pyfunc that answers a question about a video file with the rl model,
its processor and the test-time-scaling policy, exactly as the evaluate stage does.

    model = mlflow.pyfunc.load_model("models:/video-reasoner@champion")
    model.predict({"video": "clip.mp4", "question": "What colour is the square?",
                   "problem_type": "multiple_choice", "options": ["red", "green", "blue"]})
    -> ["<think>…</think><answer>B</answer>"]

Artifacts: `model` (save_pretrained folder: weights + processor), `policy` (reports/tts/policy.json),
`settings` (the params.yaml sections the model was trained and evaluated with, e.g. `video`).
Video paths are local file paths (absolute or relative to the current directory), confined to the
allowed video roots, a model-config key the model is logged with (`MODEL_CONFIG`):
`load_model(uri, model_config={"video_roots": ["/srv/videos"]})`, or for `mlflow models serve` the
environment variable MLFLOW_PYFUNC_INFERENCE_CONFIG='{"video_roots": ["/srv/videos"]}' (MLflow's own
override); unset (null), the current directory at load time. Symlinks are resolved before the check.
A path outside the roots, a missing file and a directory get one generic error, so a client cannot
probe which files exist.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import mlflow.pyfunc

Predictor = Callable[[dict, str], str]  # (record of videoreasoner/core/schema.py, video path) -> model output text
# Logged with the model: MLflow lets load-time config override only keys the logged config has.
MODEL_CONFIG: dict[str, Any] = {"video_roots": None}  # None: the current directory at load time
log = logging.getLogger(__name__)


def allowed_roots(model_config: dict | None = None) -> list[Path]:
    """The directories a request's video may lie in, resolved (symlinks followed) at load time."""
    config = dict(model_config or {})
    unknown = sorted(set(config) - set(MODEL_CONFIG))
    if unknown:
        raise KeyError(f"model_config: unknown key(s) {unknown} (known: {', '.join(MODEL_CONFIG)})")
    roots = config.get("video_roots")
    if roots is None:
        roots = [os.getcwd()]
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    return [Path(os.path.realpath(root)) for root in roots]


def confined_video(video: str, roots: Sequence[Path]) -> str | None:
    """The resolved path of `video` if it is a regular file inside one of `roots`, else None (whatever
    the reason, so that the caller's error cannot tell a missing file from a forbidden one)."""
    try:
        real = os.path.realpath(video)
        inside = any(os.path.commonpath([real, root]) == str(root) for root in roots)
    except (ValueError, OSError):  # NUL byte, mixed drives
        return None
    return real if inside and os.path.isfile(real) else None


def default_predictor_factory(model_dir: str, policy: dict, settings: dict) -> Predictor:
    """The production path: the inference engine and TTS strategies of videoreasoner/inference/, imported
    lazily."""
    from videoreasoner.inference import engines as inference
    from videoreasoner.inference import tts_strategies

    engine = inference.load_engine(model_dir, settings)
    return lambda record, video_path: tts_strategies.answer_with_policy(engine, record, video_path, policy)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def to_records(model_input: Any, roots: Sequence[Path] | None = None) -> list[dict]:
    """Requests as records of the schema in videoreasoner/core/schema.py (id, video, question, problem_type, options?).

    Accepts a pandas DataFrame, one dict, a dict of columns, or a list of dicts. Each `video` must be
    a file under `roots` (default: `allowed_roots()`); the record carries its resolved path."""
    roots = allowed_roots() if roots is None else roots
    if hasattr(model_input, "to_dict"):
        rows = model_input.to_dict(orient="records")
    elif isinstance(model_input, dict):
        columnar = model_input and all(isinstance(v, (list, tuple)) for k, v in model_input.items() if k != "options")
        if columnar and not isinstance(model_input.get("video"), str):
            n = len(model_input["video"])
            rows = [{k: v[i] for k, v in model_input.items()} for i in range(n)]
        else:
            rows = [model_input]
    else:
        rows = list(model_input)
    records = []
    for i, row in enumerate(rows):
        for key in ("video", "question"):
            if _missing(row.get(key)) or not str(row.get(key)).strip():
                raise ValueError(f"request {i}: field '{key}' is required")
        record = {"id": str(row.get("id") or f"request-{i}"), "video": str(row["video"]),
                  "question": str(row["question"]),
                  "problem_type": "free_form" if _missing(row.get("problem_type")) else str(row["problem_type"])}
        options = row.get("options")
        if not _missing(options) and len(options):
            record["options"] = [str(o) for o in options]
        if record["problem_type"] == "multiple_choice" and "options" not in record:
            raise ValueError(f"request {i}: a multiple_choice question needs 'options'")
        video = confined_video(record["video"], roots)
        if video is None:
            raise ValueError(f"request {i}: field 'video': cannot open {record['video']!r} "
                             f"(not a file under the allowed video roots)")
        records.append(record | {"video": video})
    return records


class VideoReasonerModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper; `predictor_factory(model_dir, policy, settings) -> predictor` builds the answerer
    (default: the real inference engine; tests inject a stub)."""

    def __init__(self, predictor_factory: Callable[[str, dict, dict], Predictor] | None = None):
        self.predictor_factory = predictor_factory
        self._predict_one: Predictor | None = None
        self._roots: list[Path] | None = None

    def load_context(self, context) -> None:
        artifacts = context.artifacts
        policy = json.loads(Path(artifacts["policy"]).read_text(encoding="utf-8"))
        settings_path = artifacts.get("settings")
        settings = json.loads(Path(settings_path).read_text(encoding="utf-8")) if settings_path else {}
        self._roots = allowed_roots(getattr(context, "model_config", None))
        log.info("videos are read only under %s", ", ".join(map(str, self._roots)))
        factory = self.predictor_factory or default_predictor_factory
        self._predict_one = factory(artifacts["model"], policy, settings)

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> list[str]:
        if self._predict_one is None:
            self.load_context(context)
        return [self._predict_one(record, record["video"]) for record in to_records(model_input, self._roots)]
