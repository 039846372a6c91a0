"""Verifiers: per-type scores, adversarial completions, the IoU family's properties, the round trip."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videoreasoner.answers.format import format_target
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.core.schema import RecordError
from videoreasoner.answers.verifiers import (
    DETAIL_KEYS,
    box_iou,
    evaluation_frame_times,
    temporal_iou,
    tube_frames,
    tube_tiou,
    tube_viou,
    verify,
    verify_format,
    verify_free_form,
    verify_length,
    verify_multiple_choice,
    verify_numerical,
    verify_ocr,
    verify_regression,
    verify_spatial_grounding,
    verify_spatio_temporal_grounding,
    verify_temporal_grounding,
)

OPTIONS = ["red", "blue", "green", "yellow"]


def records() -> list[dict]:
    return read_jsonl(Path(__file__).parent / "snapshots" / "sample_records.jsonl")


def wrap(answer: str) -> str:
    return f"<think>looking</think><answer>{answer}</answer>"


# ---------------------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("record", records(), ids=lambda r: r["problem_type"])
def test_round_trip_target_scores_one(record):
    target = format_target(record)
    verdict = verify(record, target)
    assert verdict.score == 1.0, verdict
    assert verdict.error is None
    assert verify_format(target, record["problem_type"], record.get("options")).score == 1.0


@pytest.mark.parametrize("record", records(), ids=lambda r: r["problem_type"])
@pytest.mark.parametrize("completion", ["", "<think>hmm</think>", "x" * 100_000,
                                        "<think>x</think><answer>A</answer><answer>B</answer>"])
def test_unreadable_completions_score_zero_with_full_details(record, completion):
    verdict = verify(record, completion)
    assert verdict.score == 0.0 and verdict.error == "no_answer"
    assert set(verdict.details) == set(DETAIL_KEYS.get(record["problem_type"], ()))


def test_off_grid_ground_truth_round_trip_is_close():
    box = [1 / 7, 2 / 9, 5 / 7, 8 / 9]
    record = {"id": "g", "problem_type": "spatial_grounding", "answer": {"time": 1.0, "box": box}}
    record_tg = {"id": "t", "problem_type": "temporal_grounding", "answer": [1 / 3, 22 / 7], "duration": 5.0}
    for r in (record, record_tg):
        assert verify(r, format_target({**r, "reasoning": "r"})).score > 0.97


# ------------------------------------------------------------------------------------------- format

@pytest.mark.parametrize("text, ptype, score", [
    ("<think>blue</think><answer>B</answer>", None, 1.0),
    ("  <think>blue</think>\n<answer>B</answer>\n", "multiple_choice", 1.0),
    ("<think>blue</think><answer>B or C</answer>", "multiple_choice", 0.0),   # well-tagged, hedged
    ("<think>blue</think><answer>B</answer>", "temporal_grounding", 0.0),
    ("<answer>B</answer>", None, 0.0),
    ("<think></think><answer>B</answer>", None, 0.0),
    ("<think>x</think><answer>B</answer> trailing", None, 0.0),
    ("<think>x</think><think>y</think><answer>B</answer>", None, 0.0),
    ("<think>x</think><answer>A</answer><answer>B</answer>", None, 0.0),
    ("<think>x<answer>B</answer></think>", None, 0.0),
    ("", None, 0.0),
    ("<think>" + "x" * 70_000 + "</think><answer>B</answer>", None, 0.0),
])
def test_verify_format(text, ptype, score):
    assert verify_format(text, ptype, OPTIONS).score == score


@pytest.mark.parametrize("words, score", [(0, 0.0), (8, 0.5), (16, 1.0), (256, 1.0), (384, 0.5), (600, 0.0)])
def test_verify_length(words, score):
    text = f"<think>{' '.join(['w'] * words)}</think><answer>B</answer>"
    assert verify_length(text, min_words=16, max_words=256).score == pytest.approx(score)
    assert verify_length("<answer>B</answer>").score == 0.0


# ----------------------------------------------------------------------------------- answer types

@pytest.mark.parametrize("answer, score", [
    ("B", 1.0), ("(B)", 1.0), ("The answer is B", 1.0), ("blue", 1.0), ("A", 0.0),
    ("A, B, C, D", 0.0), ("B or C", 0.0), ("ABCD", 0.0), ("\u0412", 0.0), ("\uff22", 0.0),
])
def test_verify_multiple_choice(answer, score):
    assert verify_multiple_choice(wrap(answer), "B", OPTIONS).score == score


def test_multiple_choice_answer_hidden_in_think_scores_zero():
    assert verify_multiple_choice("<think>it is <answer>B</answer></think>", "B", OPTIONS).score == 0.0
    assert verify_multiple_choice("<think>B</think>", "B", OPTIONS).score == 0.0


@pytest.mark.parametrize("answer, truth, score", [
    ("3", "3", 1.0), ("3.0", "3", 1.0), ("3", "3.0", 1.0), ("1,234", "1234", 1.0), ("1234", "1,234", 1.0),
    ("three", "3", 1.0), ("4", "3", 0.0), ("3 or 4", "3", 0.0), ("3.0001", "3", 0.0), ("\uff13", "3", 0.0),
])
def test_verify_numerical(answer, truth, score):
    assert verify_numerical(wrap(answer), truth).score == score


@pytest.mark.parametrize("answer, truth, score", [
    ("10", "10", 1.0), ("9", "10", 0.9), ("12", "10", 0.8), ("30", "10", 0.0), ("-10", "10", 0.0),
    ("0", "0", 1.0), ("0.1", "0", 0.0), ("1e999", "10", 0.0),
])
def test_verify_regression(answer, truth, score):
    assert verify_regression(wrap(answer), truth).score == pytest.approx(score)


@pytest.mark.parametrize("answer, truth, score", [
    ("STOP here", "STOP here", 1.0), ("stop  HERE", "STOP here", 1.0), ("STOP", "STOP here", 0.5),
    ("GO there now", "STOP here", 0.0), ("ST\u041eP here", "STOP here", 0.5),   # Cyrillic O
])
def test_verify_ocr(answer, truth, score):
    assert verify_ocr(wrap(answer), truth).score == pytest.approx(score)


def test_verify_free_form():
    truth = "it bounces off the left wall"
    assert verify_free_form(wrap("It bounces off the left wall."), truth).score == pytest.approx(1.0)
    partial = verify_free_form(wrap("the ball bounces"), truth)
    assert 0.0 < partial.score < 0.6 and set(partial.details) == {"rouge1", "rouge2", "rougeL", "rouge_official"}
    assert verify_free_form(wrap("blue"), "blue").score == 1.0        # one word: no ROUGE-2 cap
    assert verify_free_form(wrap("bl\u0443e"), "blue").score == 0.0   # Cyrillic u look-alike
    assert verify_free_form(wrap("красный мяч"), "красный мяч").score == 1.0


# --------------------------------------------------------------------------------------- grounding

@pytest.mark.parametrize("a, b, iou", [
    ([0, 10], [0, 10], 1.0), ([0, 10], [5, 15], 5 / 15), ([0, 5], [5, 10], 0.0), ([0, 2], [8, 10], 0.0),
    ([10, 0], [0, 10], 1.0), ([3, 3], [3, 3], 1.0), ([3, 3], [0, 10], 0.0), ([3, 3], [4, 4], 0.0),
    ([0, 10], [2, 4], 0.2),
])
def test_temporal_iou(a, b, iou):
    assert temporal_iou(a, b) == pytest.approx(iou)
    assert temporal_iou(b, a) == pytest.approx(iou)


def test_whole_video_span_scores_low_against_short_true_span():
    record = {"id": "t", "problem_type": "temporal_grounding", "answer": [4.0, 5.0], "duration": 60.0}
    assert verify(record, wrap("0 to 60")).score < 0.05
    assert verify(record, wrap("4 to 5")).score == 1.0


@pytest.mark.parametrize("answer, penalised", [("2.5 to 7.0", 1.0), ("3.5 to 8.0", (3.5 / 5.5) * 0.9 * 0.9)])
def test_temporal_distance_penalty(answer, penalised):
    verdict = verify_temporal_grounding(wrap(answer), [2.5, 7.0], duration=10.0, distance_penalty=True)
    assert verdict.score == pytest.approx(penalised)
    assert verdict.details["iou"] == pytest.approx(temporal_iou(verdict.parsed, [2.5, 7.0]))
    with pytest.raises(ValueError):
        verify_temporal_grounding(wrap(answer), [2.5, 7.0], distance_penalty=True)


def test_temporal_unparseable_scores_zero():
    verdict = verify_temporal_grounding(wrap("2 to 3 or 5 to 6"), [2, 3])
    assert verdict.score == 0.0 and verdict.error == "unparseable" and verdict.details == {"iou": 0.0}


@pytest.mark.parametrize("a, b, iou", [
    ([0, 0, 1, 1], [0, 0, 1, 1], 1.0), ([0, 0, 0.5, 1], [0.5, 0, 1, 1], 0.0),
    ([0, 0, 0.5, 0.5], [0, 0, 1, 1], 0.25), ([0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], 1.0),
    ([0.2, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2], 1.0), ([0.2, 0.2, 0.2, 0.4], [0, 0, 1, 1], 0.0),
])
def test_box_iou(a, b, iou):
    assert box_iou(a, b) == pytest.approx(iou)


def test_whole_frame_box_scores_low_against_small_true_box():
    truth = {"time": 1.0, "box": [0.4, 0.4, 0.5, 0.5]}
    assert verify_spatial_grounding(wrap("[0, 0, 1, 1]"), truth).score == pytest.approx(0.01)
    assert verify_spatial_grounding(wrap("[0, 0, 100, 100]"), truth).score < 1e-5   # pixels, not normalised
    assert verify_spatial_grounding(wrap("[0.4, 0.4, 0.5, 0.5] or [0, 0, 1, 1]"), truth).score == 0.0


TUBE = {"span": [1.0, 4.0],  # half-open: the frames at 1, 2 and 3 s
        "boxes": {"1.0": [0.1, 0.2, 0.3, 0.4], "2.0": [0.2, 0.2, 0.4, 0.4], "3.0": [0.3, 0.2, 0.5, 0.4]}}
FRAMES = evaluation_frame_times(5.0, 1.0)   # 0, 1, 2, 3, 4 s


def test_evaluation_frame_times_and_tube_frames():
    assert FRAMES == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert evaluation_frame_times(2.0, 2.0) == [0.0, 0.5, 1.0, 1.5]
    assert tube_frames([1.0, 3.0], FRAMES) == {1, 2}               # half-open: the frame at 3.0 is out
    assert tube_frames([3.0, 1.0], FRAMES) == {1, 2}
    assert tube_frames([1.2, 1.4], FRAMES) == {1}                   # between frames: the one on screen
    assert tube_frames([4.2, 4.9], FRAMES) == {4}                   # after the last frame time, inside the video
    assert tube_frames([-0.5, -0.1], FRAMES) == set()
    assert tube_frames([40.0, 50.0], FRAMES) == set()               # outside the video: none
    with pytest.raises(ValueError):
        evaluation_frame_times(5.0, 0.0)


@pytest.mark.parametrize("pred, tiou, viou", [
    (TUBE, 1.0, 1.0),
    ({"span": [1.0, 4.0], "boxes": {"2.0": [0.2, 0.2, 0.4, 0.4]}}, 1.0, (1 / 3 + 1 + 1 / 3) / 3),
    ({"span": [2.0, 5.0], "boxes": TUBE["boxes"]}, 2 / 4, 2 / 4),
    ({"span": [1.0, 4.0], "boxes": {}}, 1.0, 0.0),
    ({"span": [40.0, 50.0], "boxes": TUBE["boxes"]}, 0.0, 0.0),
    ({"span": [0.0, 5.0], "boxes": {"0": [0, 0, 1, 1]}}, 3 / 5, (0.04 + 0.04 + 0.04) / 5),
])
def test_tube_iou(pred, tiou, viou):
    assert tube_tiou(pred, TUBE, FRAMES) == pytest.approx(tiou)
    assert tube_viou(pred, TUBE, FRAMES) == pytest.approx(viou)


def test_spatio_temporal_frames_from_record_fps_or_argument():
    record = {"id": "s", "problem_type": "spatio_temporal_grounding", "answer": TUBE, "duration": 5.0}
    text = wrap("2.0 to 5.0; 2.0: [0.2, 0.2, 0.4, 0.4]; 3.0: [0.3, 0.2, 0.5, 0.4]")
    with pytest.raises(RecordError, match="fps"):
        verify(record, text)
    by_fps = verify({**record, "fps": 1.0}, text)
    by_frames = verify(record, text, frame_times=FRAMES)
    assert by_fps == by_frames and by_fps.details == {"tiou": 0.5, "viou": 0.5}
    assert verify_spatio_temporal_grounding(text, TUBE, frame_times=[2.0]).score == 1.0


# ------------------------------------------------------------------------------------------ dispatch

def test_verify_dispatches_on_the_records_own_type_and_rejects_bad_input():
    mc, num = records()[0], records()[1]
    assert verify(mc, wrap("B")).score == 1.0 and verify(num, wrap("B")).score == 0.0
    with pytest.raises(RecordError, match="problem_type"):
        verify({**mc, "problem_type": "riddle"}, wrap("B"))
    with pytest.raises(RecordError, match="answer"):
        verify({**mc, "answer": "AB"}, wrap("B"))
    with pytest.raises(TypeError):
        verify(mc, wrap("B"), fsp=2.0)
    assert verify(mc, "The answer is B", strict=False).score == 1.0
    assert verify(mc, "The answer is B").score == 0.0


# -------------------------------------------------------------------------------- IoU properties

_coord = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False)
_span = st.tuples(_coord, _coord)
_box = st.tuples(_coord, _coord, _coord, _coord)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(_span, _span)
def test_temporal_iou_properties(a, b):
    iou = temporal_iou(a, b)
    assert 0.0 <= iou <= 1.0
    assert iou == temporal_iou(b, a)
    assert temporal_iou(a, a) == 1.0


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(_box, _box)
def test_box_iou_properties(a, b):
    iou = box_iou(a, b)
    assert 0.0 <= iou <= 1.0
    assert iou == box_iou(b, a)
    assert box_iou(a, a) == 1.0


_time = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)
_tube = st.builds(
    lambda s, e, boxes: {"span": [s, e], "boxes": {f"{t:.2f}": list(b) for t, b in boxes}},
    _time, _time, st.lists(st.tuples(_time, _box), min_size=1, max_size=4),
)


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(_tube, _tube)
def test_tube_iou_properties(a, b):
    frames = evaluation_frame_times(5.0, 2.0)
    for f in (tube_tiou, tube_viou):
        value = f(a, b, frames)
        assert 0.0 <= value <= 1.0
        assert value == pytest.approx(f(b, a, frames))
        assert f(a, a, frames) == pytest.approx(1.0)
    assert tube_viou(a, b, frames) <= tube_tiou(a, b, frames) + 1e-12


# ---------------------------------------------------------------------------------------------------
# Non-finite numbers (issue 14, item 8): NaN compares false with everything, so min(1.0, nan) is 1.0
# ---------------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
STG_BOX = [0.1, 0.1, 0.3, 0.5]


@pytest.mark.parametrize("call", [
    lambda: temporal_iou([2.0, 4.0], [NAN, 5.0]),
    lambda: temporal_iou([2.0, 4.0], [1.0, INF]),
    lambda: temporal_iou([NAN, NAN], [NAN, NAN]),
    lambda: box_iou(STG_BOX, [0.1, 0.1, NAN, 0.5]),
    lambda: box_iou([-INF, -INF, INF, INF], STG_BOX),
    lambda: tube_frames([NAN, 3.0], [0.0, 1.0, 2.0]),
    lambda: tube_viou({"span": [1.0, 3.0], "boxes": {"1.0": STG_BOX}},
                      {"span": [1.0, 3.0], "boxes": {"nan": STG_BOX}}, [1.0, 2.0]),
], ids=["span_nan", "span_inf", "both_nan", "box_nan", "box_inf", "tube_span_nan", "tube_box_time_nan"])
def test_iou_functions_refuse_non_finite_numbers(call):
    with pytest.raises(ValueError, match="finite"):
        call()


def test_overflowing_iou_ratios_score_zero_and_identical_enormous_spans_one():
    huge = 1.7e308
    assert temporal_iou([-huge, huge], [-huge, huge]) == 1.0  # hull and overlap overflow to inf
    assert temporal_iou([-huge, huge], [0.0, huge]) == 0.0  # inf hull: an infinitely diluted overlap
    assert box_iou([-huge, 0.2, huge, 0.2], [0.0, 0.0, 0.5, 0.5]) == 0.0  # inf * 0 area is NaN
    assert box_iou([-huge, -huge, huge, huge], [-huge, -huge, huge, huge]) == 1.0


COMPLETION = "<think>x</think><answer>{}</answer>"


@pytest.mark.parametrize("call", [
    lambda: verify_temporal_grounding(COMPLETION.format("1 to 4"), [NAN, 5.0]),
    lambda: verify_temporal_grounding(COMPLETION.format("1 to 4"), [0.0, 5.0], duration=NAN,
                                      distance_penalty=True),
    lambda: verify_spatial_grounding(COMPLETION.format(STG_BOX), {"time": 1.0, "box": [0.1, 0.1, INF, 0.5]}),
    lambda: verify_spatial_grounding(COMPLETION.format(STG_BOX), {"time": NAN, "box": STG_BOX}),
    # a NaN box at a time no evaluation frame is nearest to: only a full check of the truth sees it
    lambda: verify_spatio_temporal_grounding(COMPLETION.format("1.0 to 3.0; 1.0: [0.1, 0.1, 0.3, 0.5]"),
                                             {"span": [1.0, 3.0], "boxes": {"1.0": STG_BOX, "1.01": [NAN] * 4}},
                                             frame_times=[0.0, 1.0, 2.0, 3.0]),
    lambda: verify_spatio_temporal_grounding(COMPLETION.format("1.0 to 3.0; 1.0: [0.1, 0.1, 0.3, 0.5]"),
                                             {"span": [1.0, 3.0], "boxes": {"1.0": STG_BOX}},
                                             frame_times=[0.0, NAN, 2.0]),
    lambda: verify_regression(COMPLETION.format("3"), NAN),
    lambda: verify_numerical(COMPLETION.format("3"), INF),
    lambda: verify_free_form(COMPLETION.format("nan"), NAN),
    lambda: verify_ocr(COMPLETION.format("inf"), INF),
], ids=["tg_span", "tg_duration", "sg_box", "sg_time", "stg_far_box", "stg_frame_times", "regression",
        "numerical", "free_form", "ocr"])
def test_verifiers_refuse_a_non_finite_ground_truth(call):
    with pytest.raises(ValueError, match="finite"):
        call()


@pytest.mark.parametrize("problem_type, answer, field_text", [
    ("temporal_grounding", [NAN, 5.0], "answer[0]"),
    ("temporal_grounding", "[1.0, Infinity]", "answer[1]"),  # JSON text: json.loads reads NaN/Infinity
    ("spatio_temporal_grounding", {"span": [1.0, 3.0], "boxes": {"inf": STG_BOX}}, "answer.boxes"),
    ("spatio_temporal_grounding", {"span": [1.0, 3.0], "boxes": {"1.0": [0.1, NAN, 0.3, 0.5]}},
     "answer.boxes[1.0][1]"),
    ("free_form", NAN, "answer"),
    ("regression", "-inf", "answer"),
])
def test_verify_names_the_record_and_the_non_finite_field(problem_type, answer, field_text):
    record = {"id": "nan-1", "problem_type": problem_type, "answer": answer, "duration": 8.0, "fps": 2.0}
    with pytest.raises(RecordError) as info:
        verify(record, COMPLETION.format("1.0 to 3.0"))
    assert info.value.where == "nan-1" and info.value.field == "answer" and field_text in str(info.value)
