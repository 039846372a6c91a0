"""Requests to the registered model (flows/pyfunc_requests.py, flows/pyfunc_model.py): a video by path or
as base64 bytes, one answer row per request, and errors that name the request, the field and the problem
with the HTTP class MLflow's server maps them to (400: the request; 500: the model)."""
import base64
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

from flows.pyfunc_model import VideoReasonerModel
from flows.pyfunc_requests import RequestError, to_records
from videoreasoner.video.decoding import VideoError

SEEN: list[tuple[dict, bytes]] = []


def model_with(tmp_path: Path, predictor) -> VideoReasonerModel:
    (tmp_path / "policy.json").write_text("{}")
    model = VideoReasonerModel(lambda model_dir, policy, settings: predictor)
    model.load_context(SimpleNamespace(artifacts={"model": str(tmp_path), "policy": str(tmp_path / "policy.json")},
                                       model_config={"video_roots": [str(tmp_path)]}))
    return model


def reading(record, video_path):
    SEEN.append((record, Path(video_path).read_bytes()))
    return {"text": "<think>.</think><answer>2.0 to 4.0</answer>", "frame_times": [1.0, 3.00001]}


def test_a_base64_video_is_answered_from_a_private_file_deleted_afterwards(tmp_path):
    model = model_with(tmp_path, reading)
    rows = model.predict(None, {"video_b64": base64.b64encode(b"clip bytes").decode(), "question": "When?",
                                "problem_type": "temporal_grounding", "id": "mine:1"})
    assert rows == [{"id": "mine:1", "problem_type": "temporal_grounding", "answer": [2.0, 4.0],
                     "text": "<think>.</think><answer>2.0 to 4.0</answer>", "frame_times": [1.0, 3.0],
                     "latency_s": rows[0]["latency_s"]}]
    record, data = SEEN[-1]
    assert data == b"clip bytes" and not os.path.exists(record["video"])  # written for the request, then gone


@pytest.mark.parametrize("request_, problem", [
    ({"question": "q"}, "exactly one of the fields 'video'"),
    ({"video": "a.mp4", "video_b64": "AAAA", "question": "q"}, "exactly one of the fields 'video'"),
    ({"video_b64": "not base64!", "question": "q"}, "field 'video_b64': not valid base64"),
    ({"video_b64": "", "question": "q"}, "exactly one"),
    ({"video_b64": "AAAA"}, "field 'question' is required"),
    ({"video_b64": "AAAA", "question": "q", "problem_type": "multiple_choice"}, "needs 'options'"),
    ({"video": "/etc/passwd", "question": "q"}, "field 'video': cannot open '/etc/passwd'"),
])
def test_bad_requests_are_400s_naming_the_field(tmp_path, request_, problem):
    model = model_with(tmp_path, reading)
    with pytest.raises(MlflowException, match=problem) as exc_info:
        model.predict(None, [{"video": str(tmp_path / "policy.json"), "question": "fine"}, request_])
    assert exc_info.value.get_http_status_code() == 400
    assert str(exc_info.value).startswith("request 1: ")  # the valid request 0 is not blamed


def test_an_undecodable_video_is_a_400_and_a_failing_model_a_500_with_its_message(tmp_path):
    def undecodable(record, video_path):
        raise VideoError(f"{video_path}: cannot open video (Invalid data found when processing input)")

    upload = {"video_b64": base64.b64encode(b"junk").decode(), "question": "q"}
    with pytest.raises(MlflowException) as exc_info:
        model_with(tmp_path, undecodable).predict(None, upload)
    assert exc_info.value.get_http_status_code() == 400
    assert str(exc_info.value) == ("request 0 (request-0): field 'video_b64': <uploaded video>: cannot open video "
                                   "(Invalid data found when processing input)")

    def broken(record, video_path):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(MlflowException, match=r"request 0 \(request-0\): the model failed: RuntimeError: "
                                              r"CUDA out of memory") as exc_info:
        model_with(tmp_path, broken).predict(None, upload)
    assert exc_info.value.get_http_status_code() == 500


def test_to_records_refuses_uploads_without_a_folder_and_reads_columns(tmp_path):
    with pytest.raises(RequestError, match="uploads are not accepted here"):
        to_records({"video_b64": "AAAA", "question": "q"}, [tmp_path])
    (tmp_path / "a.mp4").write_bytes(b"x")
    rows = to_records({"video": [str(tmp_path / "a.mp4")] * 2, "question": ["q1", "q2"]}, [tmp_path])
    assert [r["question"] for r in rows] == ["q1", "q2"]
