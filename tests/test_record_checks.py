"""Pure per-record checks: good records of every type pass; each bad one is named by field."""
import copy

import pytest

from videoreasoner.data.record_checks import (
    RECORD_CHECKS,
    check_answer,
    check_boxes,
    check_fields,
    check_options,
    check_question,
    check_times,
    check_video,
    format_problem,
)
from videoreasoner.core.schema import PROBLEM_TYPES
from videoreasoner.video.decoding import VideoInfo

BASE = {"id": "r1", "video": "videos/a.mp4", "duration": 4.0, "question": "Where?", "split": "train",
        "source": "synthetic-v1"}
ANSWERS = {
    "multiple_choice": "C",
    "numerical": "3",
    "regression": "-2.5e1",
    "free_form": "a red square",
    "ocr": "EXIT",
    "temporal_grounding": [0.0, 4.0],
    "spatial_grounding": {"time": 3.875, "box": [0.0, 0.1, 1.0, 0.9]},  # the last frame of 4 s at 8 fps
    # half-open [1.0, 2.5): the box at 2.0 is inside
    "spatio_temporal_grounding": {"span": [1.0, 2.5], "boxes": {"1": [0.1, 0.1, 0.2, 0.2], "2.0": [0, 0, 1, 1]}},
}
INFO = VideoInfo("videos/a.mp4", fps=8.0, n_frames=32, width=112, height=112)


def record(problem_type: str, **changes):
    rec = {**copy.deepcopy(BASE), "problem_type": problem_type, "answer": copy.deepcopy(ANSWERS[problem_type])}
    if problem_type == "multiple_choice":
        rec["options"] = ["red", "green", "blue"]
    rec.update(changes)
    return {k: v for k, v in rec.items() if v is not None}


@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
def test_good_records_pass_every_check(problem_type):
    rec = record(problem_type, fps=8, width=112, height=112, reasoning="...", meta={"kind": "reasoning"})
    assert {name: check(rec) for name, check in RECORD_CHECKS.items()} == dict.fromkeys(RECORD_CHECKS)
    assert check_video(rec, INFO) is None


@pytest.mark.parametrize("check, rec, field, words", [
    (check_fields, record("ocr", colour="red"), "colour", "not a schema field"),
    (check_fields, record("ocr", id=""), "id", "non-empty string"),
    (check_fields, record("ocr", video=3), "video", "int"),
    (check_fields, record("ocr", duration="4"), "duration", "positive finite"),
    (check_fields, record("ocr", duration=0), "duration", "positive finite"),
    (check_fields, record("ocr", duration=True), "duration", "bool"),
    (check_fields, record("ocr", width=11.5), "width", "integer"),
    (check_fields, record("ocr", meta=["x"]), "meta", "object"),
    (check_question, record("ocr", question=" \n"), "question", "empty"),
    (check_question, record("ocr", question=["a"]), "question", "text"),
    (check_options, record("multiple_choice", options=None), "options", "missing"),
    (check_options, record("multiple_choice", options="red,green"), "options", "list"),
    (check_options, record("multiple_choice", options=["red"]), "options", "2 to 26"),
    (check_options, record("multiple_choice", options=["red", " "]), "options[1]", "option B"),
    (check_options, record("multiple_choice", options=["red", "red "]), "options", "duplicate"),
    (check_options, record("numerical", options=["1", "2"]), "options", "only for multiple_choice"),
    (check_answer, record("multiple_choice", answer="D"), "answer", "not among the 3 options (A-C)"),
    (check_answer, record("multiple_choice", answer="b"), "answer", "option letter"),
    (check_answer, record("multiple_choice", answer="AB"), "answer", "option letter"),
    (check_answer, record("numerical", answer=3), "answer", "as a string"),
    (check_answer, record("numerical", answer="three"), "answer", "does not parse"),
    (check_answer, record("regression", answer="inf"), "answer", "finite"),
    (check_answer, record("free_form", answer="  "), "answer", "non-empty text"),
    (check_answer, record("ocr", answer=7), "answer", "non-empty text"),
    (check_answer, record("temporal_grounding", answer=[1.0]), "answer", "2 finite numbers"),
    (check_answer, record("temporal_grounding", answer=["0", "1"]), "answer", "2 finite numbers"),
    (check_answer, record("spatial_grounding", answer={"box": [0, 0, 1, 1]}), "answer", "'time'"),
    (check_answer, record("spatial_grounding", answer={"time": "1", "box": [0, 0, 1, 1]}), "answer.time", "seconds"),
    (check_answer, record("spatial_grounding", answer={"time": 1, "box": [0, 0, 1]}), "answer.box", "4 finite"),
    (check_answer, record("spatio_temporal_grounding", answer={"span": [0, 1]}), "answer", "'span'"),
    (check_answer, record("spatio_temporal_grounding", answer={"span": [0, 1], "boxes": {}}), "answer.boxes",
     "non-empty"),
    (check_answer, record("spatio_temporal_grounding", answer={"span": [0, 1], "boxes": {"t0": [0, 0, 1, 1]}}),
     "answer.boxes", "'t0' is not a time"),
    (check_times, record("temporal_grounding", answer=[2.0, 1.0]), "answer", "start < end"),
    (check_times, record("temporal_grounding", answer=[1.0, 1.0]), "answer", "start < end"),
    (check_times, record("temporal_grounding", answer=[-0.5, 1.0]), "answer", "0 <= start"),
    (check_times, record("temporal_grounding", answer=[1.0, 4.5]), "answer", "duration 4"),
    (check_times, record("spatial_grounding", answer={"time": 4.2, "box": [0, 0, 1, 1]}), "answer.time", "outside"),
    (check_times, record("spatio_temporal_grounding", answer={"span": [3, 5], "boxes": {"3": [0, 0, 1, 1]}}),
     "answer.span", "duration"),
    (check_times, record("spatio_temporal_grounding", answer={"span": [1, 2], "boxes": {"2.5": [0, 0, 1, 1]}}),
     "answer.boxes[2.5]", "outside the half-open span"),
    # spans are half-open (videoreasoner/answers/spans.py): a box at the end time, or an instant at the
    # clip's end, is outside
    (check_times, record("spatio_temporal_grounding", answer={"span": [1, 2], "boxes": {"1": [0, 0, 1, 1],
                                                                                         "2.0": [0, 0, 1, 1]}}),
     "answer.boxes[2.0]", "outside the half-open span [1, 2)"),
    (check_times, record("spatial_grounding", answer={"time": 4.0, "box": [0, 0, 1, 1]}), "answer.time",
     "outside the clip [0, duration 4) s"),
    (check_times, record("spatial_grounding", answer={"time": -0.001, "box": [0, 0, 1, 1]}), "answer.time",
     "outside"),
    (check_boxes, record("spatial_grounding", answer={"time": 1, "box": [0.1, 0.1, 1.2, 0.5]}), "answer.box",
     "normalised"),
    (check_boxes, record("spatial_grounding", answer={"time": 1, "box": [0.5, 0.1, 0.5, 0.5]}), "answer.box",
     "x1 < x2"),
    (check_boxes, record("spatio_temporal_grounding", answer={"span": [1, 2], "boxes": {"1.5": [0, 0.6, 1, 0.2]}}),
     "answer.boxes[1.5]", "y1 < y2"),
    (check_boxes, record("spatial_grounding", answer={"time": 1, "box": [-0.1, 0, 0.5, 0.5]}), "answer.box",
     "normalised"),
])
def test_bad_record_names_the_field(check, rec, field, words):
    problem = check(rec)
    assert problem is not None and problem[0] == field and words in problem[1], problem
    assert format_problem(problem).startswith(f"{field}: ")


def test_concerns_do_not_overlap():
    """A malformed answer is reported once (by check_answer), not again as a bad time or box."""
    rec = record("spatial_grounding", answer={"time": 9.0, "box": [2, 2, 1]})
    assert check_answer(rec)[0] == "answer.box"
    assert check_times(rec) is None and check_boxes(rec) is None
    missing = record("ocr", question=None, answer=None)
    assert all(check(missing) is None for check in RECORD_CHECKS.values())


@pytest.mark.parametrize("rec, info, field", [
    (record("ocr"), "videos/a.mp4: video file does not exist", "video"),
    (record("ocr", duration=4.2), INFO, "duration"),  # 1.6 frames off at 8 fps
    (record("ocr", fps=25), INFO, "fps"),
    (record("ocr", width=224), INFO, "width"),
    (record("ocr", height=56), INFO, "height"),
])
def test_video_disagreement(rec, info, field):
    assert check_video(rec, info)[0] == field


def test_video_duration_tolerance_is_in_frames():
    assert check_video(record("ocr", duration=4.125), INFO) is None  # exactly one frame at 8 fps
    assert check_video(record("ocr", duration=4.125), INFO, tolerance_frames=0.5)[0] == "duration"
    assert check_video(record("ocr"), None) is None  # not probed: `video` itself is malformed
