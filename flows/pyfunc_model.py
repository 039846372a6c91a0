"""The registered model: an MLflow pyfunc that answers a question about a video file with the rl model,
its processor and the test-time-scaling policy, exactly as the evaluate stage does.

    model = mlflow.pyfunc.load_model("models:/video-reasoner@champion")
    model.predict({"video": "clip.mp4", "question": "What colour is the square?",
                   "problem_type": "multiple_choice", "options": ["red", "green", "blue"]})
    -> [{"id": "request-0", "problem_type": "multiple_choice", "answer": "B",
         "text": "<think>…</think><answer>B</answer>", "frame_times": [1.0, 3.0, 5.0, 7.0], "latency_s": 0.41}]

One row per request (flows/pyfunc_requests.py `answer_row`): the parsed answer as the verifiers read it
(None when unreadable), the raw text, the presentation times (seconds) of the frames the answer saw, and
the wall seconds the request took. `vr predict` prints the same fields.

Artifacts: `model` (save_pretrained folder: weights + processor), `policy` (reports/tts/policy.json),
`settings` (the params.yaml sections the model was trained and evaluated with, e.g. `video`).
A request gives its video as a path (`video`), confined to the allowed video roots, a model-config key
the model is logged with (`MODEL_CONFIG`): `load_model(uri, model_config={"video_roots": ["/srv/videos"]})`,
or for `mlflow models serve` the environment variable
MLFLOW_PYFUNC_INFERENCE_CONFIG='{"video_roots": ["/srv/videos"]}' (MLflow's own override); unset (null),
the current directory at load time. Or it sends the file's bytes, base64-encoded (`video_b64`). The
request format and the confinement rules are in flows/pyfunc_requests.py.

Errors reach a client as an MlflowException whose message names the request, the field and the problem
(`mlflow models serve` answers HTTP 400 with that message for a bad request or a video that cannot be
decoded, and 500 with the exception's type and text when the model itself fails), never only a stack
trace.

This module's path and the class name VideoReasonerModel must stay: every registered version's pickle
names them (tests/fixtures/pyfunc_v0).
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from flows.pyfunc_requests import (  # noqa: F401  (re-exported: the names this module always had)
    MODEL_CONFIG,
    RequestError,
    allowed_roots,
    answer_row,
    confined_video,
    to_records,
)

# (record of videoreasoner/core/schema.py, video path) -> the raw model text, or {"text", "frame_times"}
Predictor = Callable[[dict, str], "str | dict[str, Any]"]
log = logging.getLogger(__name__)


def default_predictor_factory(model_dir: str, policy: dict, settings: dict) -> Predictor:
    """The production path: the inference engine and TTS strategies of videoreasoner/inference/, imported
    lazily. Its answers carry the frame times of the frames the policy's final answer saw."""
    from videoreasoner.inference import engines as inference
    from videoreasoner.inference import tts_strategies

    engine = inference.load_engine(model_dir, settings)
    frames = tts_strategies.with_sampler(engine, policy.get("sampler")).frames  # the policy's sampler

    def predict(record: dict, video_path: str) -> dict[str, Any]:
        record = dict(record, video=str(video_path))
        answer = tts_strategies.apply_policy(engine, [record], policy)[0]
        return {"text": answer.text, "frame_times": list(frames.get(record, answer.frames).timestamps)}
    return predict


def parse_answer(record: dict, text: str) -> Any:
    """The answer as the verifiers read it (strict extraction), JSON-ready; None when unreadable."""
    from videoreasoner.answers.format import extract_answer
    from videoreasoner.answers.format import parse_answer as parse

    value = parse(record["problem_type"], extract_answer(text, strict=True), record.get("options"))
    return json.loads(json.dumps(value))  # tuples become lists, as a served client sees them


def _video_error_type() -> type[Exception]:
    from videoreasoner.video.decoding import VideoError

    return VideoError


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

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One answer row per request (flows/pyfunc_requests.py `answer_row`)."""
        if self._predict_one is None:
            self.load_context(context)
        with tempfile.TemporaryDirectory(prefix="vr-request-") as uploads:
            try:
                records = to_records(model_input, self._roots, upload_dir=uploads)
            except RequestError as exc:
                raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
            return [self._answer(i, record, uploads) for i, record in enumerate(records)]

    def _answer(self, i: int, record: dict, uploads: str) -> dict[str, Any]:
        field = "video_b64" if record["video"].startswith(uploads) else "video"
        t0 = time.perf_counter()
        try:
            result = self._predict_one(record, record["video"])
        except _video_error_type() as exc:  # the request's file is not a video we can decode
            problem = str(exc).replace(record["video"], "<uploaded video>" if field == "video_b64" else record["video"])
            raise MlflowException(f"request {i} ({record['id']}): field '{field}': {problem}",
                                  error_code=INVALID_PARAMETER_VALUE) from None
        except Exception as exc:
            log.exception("request %d (%s) failed", i, record["id"])
            raise MlflowException(f"request {i} ({record['id']}): the model failed: {type(exc).__name__}: {exc}",
                                  error_code=INTERNAL_ERROR) from exc
        return answer_row(record, result, time.perf_counter() - t0, parse_answer)
