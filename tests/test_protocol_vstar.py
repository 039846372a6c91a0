"""vstar: cases worked out by hand from V-STaR's eval.py and inference_demo.py (line numbers in the
protocol's docstring)."""
import math

import pytest

from videoreasoner.answers.protocols.vstar import (
    PROTOCOL,
    best_box_iou,
    box_iou,
    read_boxes,
    read_span,
    spatial_metrics,
    temporal_iou,
    timestamp_key,
)

SPANS = [
    ("2.5 - 7.0 seconds", [2.5, 7.0]),
    ("[2.5, 7.0]", [2.5, 7.0]),
    ("-1 to 3", [1.0, 3.0]),                                  # unsigned numbers
    ("7 to 2", [7.0, 2.0]),                                   # kept reversed
    ("from 2 to 5 or 6", []),                                 # three numbers in one sentence: none
    ("<think>at 1 s</think><answer>2 to 4</answer>", []),     # no tag handling: the 1 counts too
    ("2.5s - 7s", []),                                        # "2.5s" reads as 2, "7s" as nothing
    ("no time", []),
]


@pytest.mark.parametrize("text, span", SPANS)
def test_read_span(text, span):
    assert read_span(text) == span


@pytest.mark.parametrize("pred, iou", [
    ([4, 8], 2 / 6), ([6, 2], 0.0), ([2, 6], 1.0), ([], 0.0), ([7, 9], 0.0),
])
def test_temporal_iou(pred, iou):
    assert temporal_iou([2, 6], pred) == pytest.approx(iou)


def test_zero_length_spans_score_zero():
    assert temporal_iou([3, 3], [3, 3]) == 0.0
    assert temporal_iou([2, 6], [4, 4]) == 0.0


BOX = [0.1, 0.1, 0.5, 0.5]
BOXES = [
    ('```json\n{"2": [0.1, 0.1, 0.5, 0.5]}\n```', {"2": BOX}),
    ("{'2': [0.1, 0.1, 0.5, 0.5]}", {"2": BOX}),                                   # single quotes
    ('[{"2": [0.1, 0.1, 0.5, 0.5]}, {"3": [0, 0, 1, 1]}]', {"2": BOX, "3": [0, 0, 1, 1]}),  # merged
    ('[["2", [0.1, 0.1, 0.5, 0.5]]]', {"2": BOX}),                                 # pairs
    ("[0.1, 0.1, 0.5, 0.5]", BOX),                     # the pair step fails: a bare list comes back
    ('{"2": [0.1, 0.1, 0.5, 0.5]', BOX),               # unclosed dict: the list inside is found first
    ("1.0 to 3.0; 1.0: [0.1, 0.2, 0.3, 0.4]; 2.0: [0.2, 0.2, 0.4, 0.4]", None),   # our tube text
    ("no boxes", None),
]


@pytest.mark.parametrize("text, boxes", BOXES)
def test_read_boxes(text, boxes):
    assert read_boxes(text) == boxes


def test_box_iou_has_no_corner_ordering():
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert box_iou([0, 0, 2, 2], [3, 3, 1, 1]) == 0.0
    assert box_iou([0, 0, 2, 2], [0, 0, 2]) == 0.0
    assert best_box_iou([0, 0, 2, 2], [[0, 0, 1, 1], [0, 0, 2, 2]]) == 1.0      # the best of several
    assert best_box_iou([0, 0, 2, 2], "junk") == 0.0


def test_spatial_metrics_look_frames_up_by_exact_key():
    aps, miou = spatial_metrics({"1": [0, 0, 2, 2], "2": [0, 0, 2, 2]}, {"1": [0, 0, 2, 2], "2.0": [0, 0, 2, 2]})
    assert miou == 0.5 and aps == [0.5] * 5
    assert spatial_metrics({"1": [0, 0, 2, 2]}, [0, 0, 2, 2]) == ([0.0] * 5, 0.0)   # a list holds no key
    assert timestamp_key(2.0) == "2" and timestamp_key(2.5) == "2.5"


def test_items_and_summary():
    st = {"id": "st", "problem_type": "spatio_temporal_grounding",
          "answer": {"span": [1.0, 3.0], "boxes": {"1.0": [0.1, 0.2, 0.3, 0.4], "2.0": [0.2, 0.2, 0.4, 0.4]}}}
    item = PROTOCOL.score_item(st, '1 3 {"1": [0.1, 0.2, 0.3, 0.4]}', {"vqa": "strict"})
    # five numbers in the text: no span; the JSON's frame "1" matches, frame "2" is missing
    assert item.details["tiou"] == 0.0 and item.details["viou"] == 0.5
    mc = {"id": "mc", "problem_type": "multiple_choice", "answer": "B", "options": ["a", "b"]}
    assert PROTOCOL.score_item(mc, "<think>x</think><answer>B</answer>", {"vqa": "strict"}).details == {"acc": 1.0}
    rows = [{"problem_type": "multiple_choice", "details": {"acc": 1.0}},
            {"problem_type": "temporal_grounding", "details": {"tiou": 0.5}},
            {"problem_type": "spatial_grounding", "details": {"viou": 0.25, "aps": [1, 0, 0, 0, 0]}}]
    out = PROTOCOL.summarize(rows, {"vqa": "strict"})
    assert out["AM"] == pytest.approx((1.0 + 0.5 + 0.25) / 3) and out["R1@0.5"] == 1.0 and out["mAP@0.1"] == 1
    assert out["LGM"] is None and "official_crash" in out["LGM_note"]      # ln(1 - 1) raises there
    rows[0]["details"]["acc"] = 0.5
    assert PROTOCOL.summarize(rows, {"vqa": "strict"})["LGM"] == pytest.approx(
        -(2 * math.log(0.5) + math.log(0.75)) / 3)
