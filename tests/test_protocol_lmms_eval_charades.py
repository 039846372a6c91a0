"""lmms_eval_charades: cases worked out by hand from lmms-eval's charades_sta/utils.py (line numbers in
the protocol's docstring)."""
import pytest

from videoreasoner.answers.protocols.lmms_eval_charades import PROTOCOL, extract_span, hull_iou

SPANS = [
    # (completion, the span lmms-eval reads)
    ("The event happens in the 2.5 - 7.0 seconds.", [2.5, 7.0]),
    ("It happens from 2.5 to 7", [2.5, 7.0]),                       # "to" -> "-" (L86)
    ("It happens in 7 - 2.5", [2.5, 7.0]),                           # reversed, reordered (L142)
    ("It happens in 3 - 3", [3.0, 3.0]),                             # zero-length kept as written
    ("It starts at 1.0, then 2.0 - 4.0 and 5.0 - 6.0", [2.0, 4.0]),  # several numbers: first range
    ("The event starts at 0:18 and ends at 0:23", [18.0, 23.0]),     # clock times, paired (L114-122)
    ("It happens in 01:05 - 01:10", [65.0, 70.0]),                   # clock range wins over "05 - 01"
    ("Start time: 2.5 seconds\nEnd time: 7 seconds", [2.5, 7.0]),    # first number of each sentence
    ("start: 2.5s\nend: 7.0 s", [2.0, 7.0]),                         # "2.5s" reads as 2 (\b backtracks)
    ("It happens in 2s - 5s", [2.0, 5.0]),                           # the unit fallback (L133-138)
    ("A specific example is : 20.8 - 30.0 seconds. It happens in 2 - 4", [2.0, 4.0]),  # example removed
    # answers without tags: the whole text is read, <think> included, and its first range wins
    ("<think>Between 1 - 2 nothing moves.</think><answer>3.0 to 5.0</answer>", [1.0, 2.0]),
    ("It starts at 2. It ends at 6.", None),        # "." splits no sentence: one first number, dropped
    ("start: 2.5s, end: 7s", None),                 # one sentence, one first number ("7s" has none)
    ("I do not know", None),
    ("", None),
]


@pytest.mark.parametrize("text, span", SPANS)
def test_extract_span(text, span):
    assert extract_span(text) == span


IOUS = [
    ([2, 6], [4, 8], 2 / 6),
    ([2, 4], [5, 6], 0.0),
    ([2, 6], [2, 6], 1.0),
    ([3, 3], [3, 3], 0.0),   # zero hull: 0, not a division by zero (L160-161)
    ([2, 4], [3, 3], 0.0),   # a zero-length prediction inside the truth overlaps by 0
    ([0, 10], [2, 4], 0.2),
]


@pytest.mark.parametrize("truth, pred, iou", IOUS)
def test_hull_iou(truth, pred, iou):
    assert hull_iou(truth, pred) == pytest.approx(iou)


def record(answer):
    return {"id": "tg", "problem_type": "temporal_grounding", "answer": answer}


def test_unreadable_answers_score_zero_as_bad_predictions():
    verdict = PROTOCOL.score_item(record([2.0, 6.0]), "no idea", {})
    assert verdict.score == 0.0 and verdict.error == "bad_prediction"
    assert PROTOCOL.score_item(record([2.0, 6.0]), "It happens in 6 - 2", {}).score == 1.0


def test_summary_is_in_percent_and_thresholds_are_inclusive():
    items = [{"score": s, "error": e, "problem_type": "temporal_grounding", "details": {}}
             for s, e in [(0.5, None), (0.3, None), (0.0, "bad_prediction"), (1.0, None)]]
    assert PROTOCOL.summarize(items, {}) == {"IOU@3": 75.0, "IOU@5": 50.0, "IOU@7": 25.0, "mIOU": 45.0,
                                             "bad_predictions": 1}
