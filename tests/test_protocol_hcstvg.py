"""tubedetr_hcstvg and cgstvg_hcstvg: cases worked out by hand from TubeDETR's and CG-STVG's
hcstvg_eval.py (line numbers in the protocol's docstring)."""
import math

import pytest

from videoreasoner.answers.protocols.hcstvg import CGSTVG, TUBEDETR, frame_tiou, np_style_iou, tubedetr_frames

TUBEDETR_SETTINGS = {"fps": None, "sample_fps": 5.0, "clip_seconds": 20.0, "video_max_len": 200}
BOX = [0.1, 0.2, 0.5, 0.6]


def test_tubedetr_keeps_frames_at_5_fps_of_a_20_s_clip_and_never_the_last():
    assert tubedetr_frames(200, TUBEDETR_SETTINGS) == list(range(0, 199, 2))     # 10 fps -> every 2nd
    assert tubedetr_frames(100, TUBEDETR_SETTINGS) == list(range(99))             # 5 fps: all but the last
    assert tubedetr_frames(32, TUBEDETR_SETTINGS) is None                        # 1.6 fps: assert fails
    thinned = tubedetr_frames(1000, dict(TUBEDETR_SETTINGS, video_max_len=10))
    assert thinned == list(range(0, 1000, 100))                                  # 100 kept -> 10


@pytest.mark.parametrize("gt, pred, tiou", [
    ([10, 20], [15, 25], 1 / 3), ([10, 20], [10, 20], 1.0),
    ([10, 20], [25, 15], 0.0),        # reversed: min_end <= max_start
    ([10, 20], [12, 12], 0.0),        # zero-length
    ([10, 20], [20, 30], 0.0),        # touching half-open spans share no frame
])
def test_frame_tiou(gt, pred, tiou):
    assert frame_tiou(gt, pred) == pytest.approx(tiou)


def test_box_iou_as_numpy_computes_it():
    assert np_style_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert math.isnan(np_style_iou([1, 1, 1, 1], [1, 1, 1, 1]))


def tube(span, step=0.25):
    """A record with a constant box over `span` (seconds), 20 s at 25 fps."""
    times = [span[0] + k * step for k in range(int((span[1] - span[0]) / step) + 1)]
    return {"id": "st", "problem_type": "spatio_temporal_grounding", "duration": 20.0, "fps": 25.0,
            "answer": {"span": span, "boxes": {f"{t:.2f}": BOX for t in times}}}


def answer(span, boxes_at):
    body = "; ".join(f"{t}: [0.10, 0.20, 0.50, 0.60]" for t in boxes_at)
    return f"<think>x</think><answer>{span[0]} to {span[1]}; {body}</answer>"


def test_tubedetr_items():
    perfect = TUBEDETR.score_item(tube([4.0, 8.0]), answer([4.0, 8.0], [4.0, 6.0]), TUBEDETR_SETTINGS)
    assert perfect.details["tiou"] == 1.0 and perfect.score == 1.0
    # frames [150, 250) against [100, 200): tIoU 50 / 150; kept frames (every 5th) in the hull [100, 250):
    # 30, of which the 10 in [150, 200) carry a matching box
    late = TUBEDETR.score_item(tube([4.0, 8.0]), answer([6.0, 10.0], [6.0]), TUBEDETR_SETTINGS)
    assert late.details["tiou"] == pytest.approx(1 / 3) and late.score == pytest.approx(10 / 30)
    assert late.details["gt_viou"] == 1.0     # every ground-truth frame finds the nearest predicted box
    reversed_ = TUBEDETR.score_item(tube([4.0, 8.0]), answer([8.0, 4.0], [6.0]), TUBEDETR_SETTINGS)
    assert reversed_.details["tiou"] == 0.0 and reversed_.score == 0.0
    unread = TUBEDETR.score_item(tube([4.0, 8.0]), "4 to 8", TUBEDETR_SETTINGS)       # no tags
    assert unread.error == "unreadable" and unread.score == 0.0
    short = dict(tube([4.0, 8.0]), duration=8.0, fps=4.0)                              # 32 frames
    assert TUBEDETR.score_item(short, answer([4.0, 8.0], [4.0]), TUBEDETR_SETTINGS).error == "official_crash"


def test_cgstvg_reads_an_inclusive_bound_as_half_open():
    record = dict(tube([2.0, 4.0]), duration=8.0, fps=4.0)     # frames 0..31; ground truth [8, 16]
    perfect = CGSTVG.score_item(record, answer([2.0, 4.0], [2.0]), {"fps": None})
    assert perfect.details["tiou"] == 1.0 and perfect.score == 1.0 and perfect.details["gt_viou"] == 1.0
    longer = CGSTVG.score_item(record, answer([2.0, 4.25], [2.0]), {"fps": None})   # sted [8, 17]
    assert longer.details["tiou"] == pytest.approx(8 / 9) and longer.score == pytest.approx(8 / 9)
    # at the clip's end the truth is clipped to the last frame (31) and the exact answer is not (32)
    end = dict(tube([6.0, 8.0]), duration=8.0, fps=4.0)
    at_end = CGSTVG.score_item(end, answer([6.0, 8.0], [6.0]), {"fps": None})
    assert at_end.details["tiou"] == pytest.approx(7 / 8) and at_end.score == pytest.approx(7 / 8)


def test_cgstvg_skips_frames_without_a_predicted_box():
    record = dict(tube([2.0, 4.0]), duration=8.0, fps=4.0)
    spanned = CGSTVG.score_item(record, "<answer>2.0 to 4.0</answer>", {"fps": None})   # a span, no boxes
    assert spanned.error is None and spanned.details["tiou"] == 1.0 and spanned.score == 0.0


def test_summary_counts_viou_above_thresholds_strictly():
    items = [{"problem_type": "spatio_temporal_grounding", "score": v, "error": None,
              "details": {"tiou": 1.0, "viou": v, "gt_viou": v}} for v in (0.5, 0.3, 0.9)]
    out = TUBEDETR.summarize(items, TUBEDETR_SETTINGS)
    assert out["viou@0.5"] == pytest.approx(1 / 3) and out["viou@0.3"] == pytest.approx(2 / 3)
    assert out["viou"] == pytest.approx(1.7 / 3) and out["tiou"] == 1.0


@pytest.mark.parametrize("protocol, settings", [(TUBEDETR, dict(TUBEDETR_SETTINGS, fps=25.0)), (CGSTVG, {"fps": None})])
def test_a_time_too_large_for_a_frame_number_is_unreadable_not_a_crash(protocol, settings):
    huge = "<answer>" + "9" * 308 + " to 2.0; 2.0: [0.10, 0.20, 0.50, 0.60]</answer>"   # × fps overflows
    verdict = protocol.score_item(dict(tube([4.0, 8.0]), fps=4.0), huge, settings)
    assert verdict.error == "unreadable" and verdict.score == 0.0
