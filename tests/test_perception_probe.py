"""Perception gates: per-task values, blank controls, paired gaps and verdicts, and the item measures."""
import json

from videoreasoner.inference.perception_probe import item_score, summarise


def _rec(task, i, problem_type="free_form", answer="red"):
    return {"id": f"{task}-{i}", "problem_type": problem_type, "question": "q?", "answer": answer,
            "meta": {"kind": "perception", "task": task}}


def test_a_task_passes_only_when_its_gap_is_clearly_positive_and_its_target_is_met():
    records = [_rec("colour_word", i) for i in range(40)] + [_rec("shape_word", i) for i in range(40)]
    video = [1.0] * 36 + [0.0] * 4 + [1.0] * 20 + [0.0] * 20
    blank = [0.0] * 40 + [1.0] * 20 + [0.0] * 20
    out = summarise(records, video, blank, gates={"min_gap": 0.05, "targets": {"colour_word": 0.85}})
    json.dumps(out)  # plain Python values: the manifest is JSON
    colour, shape = out["colour_word"], out["shape_word"]
    assert colour["video"] == 0.9 and colour["blank"] == 0.0 and colour["gap"] == 0.9
    assert colour["gap_ci95"][0] > 0.7 and colour["passed"] is True
    assert shape["gap"] == 0.0 and shape["passed"] is False  # the same answers with blank frames
    strict = summarise(records, video, blank, gates={"min_gap": 0.05, "targets": {"colour_word": 0.95}})
    assert strict["colour_word"]["passed"] is False  # seeing, but below its target


def test_option_look_up_is_gated_on_its_target_alone():
    """The looked-up word is in the question, so blank frames answer it as well: no gap is asked."""
    records = [_rec("option_lookup", i, "multiple_choice", "B") for i in range(40)]
    same = [1.0] * 36 + [0.0] * 4
    out = summarise(records, same, same, gates={"min_gap": 0.05, "targets": {"option_lookup": 0.8}})
    assert out["option_lookup"]["gap"] == 0.0 and out["option_lookup"]["passed"] is True
    low = summarise(records, same, same, gates={"min_gap": 0.05, "targets": {"option_lookup": 0.95}})
    assert low["option_lookup"]["passed"] is False


def test_captions_are_reported_not_gated():
    records = [_rec("caption_line", i) for i in range(10)]
    out = summarise(records, [0.5] * 10, [0.5] * 10)
    assert out["caption_line"]["gated"] is False and out["caption_line"]["passed"] is None


def test_item_measures():
    assert item_score(_rec("colour_word", 0), "<answer>Red</answer>") == 1.0
    assert item_score(_rec("order_direct", 0, answer="red square"), "<answer>red circle</answer>") == 0.0
    span = _rec("when_visible_direct", 0, "temporal_grounding", [2.0, 4.0])
    assert item_score(span, "<answer>3.0 to 4.0</answer>") == 0.5
    box = _rec("where_at_time_direct", 0, "spatial_grounding", {"time": 1.0, "box": [0.0, 0.0, 0.5, 0.5]})
    assert item_score(box, "<answer>[0.0, 0.0, 0.5, 0.25]</answer>") == 0.5
