"""Issue 17 items 3-4: CJK-adjacent option letters, dotted runs, IoU input types, MRA, official ROUGE."""
from __future__ import annotations

import numpy as np
import pytest
from rouge_score import rouge_scorer

from videoreasoner.answers.iou import box_iou, temporal_iou, tube_viou
from videoreasoner.answers.metrics import aggregate, item_result
from videoreasoner.answers.parse import parse_box, parse_choice, parse_number
from videoreasoner.answers.text import rouge_official
from videoreasoner.answers.verifiers import (
    MRA_THRESHOLDS,
    mean_relative_accuracy,
    verify,
    verify_free_form,
    verify_multiple_choice,
    verify_regression,
)
from videoreasoner.core.schema import RecordError
from videoreasoner.training.rewards import DEFAULT_REWARDS, build_rewards


def wrap(answer: str) -> str:
    return f"<think>reasoning here</think><answer>{answer}</answer>"


# --- parsing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, letter", [("答案是C", "C"), ("选B", "B"), ("答案：A。", "A"), ("B选项", "B"),
                                          ("正确答案是 D", "D")])
def test_letter_next_to_cjk_text_is_read(text, letter):
    assert parse_choice(text, ["w", "x", "y", "z"]) == letter


def test_letter_next_to_cjk_is_read_in_lenient_mode_without_answer_tags():
    verdict = verify_multiple_choice("<think>想一想</think>答案是C", "C", ["w", "x", "y", "z"], strict=False)
    assert verdict.score == 1.0 and verdict.parsed == "C"


@pytest.mark.parametrize("text", ["选AB", "答案是A或B", "Bа", "ВB", "答案是Ｂ"])
def test_cjk_boundary_keeps_hedges_and_lookalikes_out(text):
    assert parse_choice(text, ["w", "x", "y", "z"]) is None


@pytest.mark.parametrize("text", ["1.2.3", "1.2.3 m", "v1.2.3", "2024.01.15", "the answer is 1.2.3 or 4"])
def test_dotted_run_is_not_a_number(text):
    assert parse_number(text) is None


@pytest.mark.parametrize("text, value", [("1.2", 1.2), ("It is 1.2.", 1.2), ("-.5", -0.5), ("1,234.5", 1234.5)])
def test_ordinary_decimals_still_parse(text, value):
    assert parse_number(text) == pytest.approx(value)


def test_dotted_run_is_not_a_box_coordinate():
    assert parse_box("0.1 0.2.3 0.4 0.5") is None
    assert parse_box("0.1 0.2 0.4 0.5") == [0.1, 0.2, 0.4, 0.5]


# --- IoU input types ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [["1", 3.0], [1.0, "3"], [True, 3.0], [None, 3.0], [1.0, b"3"]])
def test_temporal_iou_refuses_non_numbers(bad):
    with pytest.raises(ValueError, match="needs numbers"):
        temporal_iou(bad, [1.0, 2.0])
    with pytest.raises(ValueError, match="needs numbers"):
        temporal_iou([1.0, 2.0], bad)


@pytest.mark.parametrize("bad", [["0", 0, 1, 1], [0, 0, 1, "1.0"], [0, 0, 1, False]])
def test_box_iou_refuses_non_numbers(bad):
    with pytest.raises(ValueError, match=r"a box \[x1, y1, x2, y2\] needs numbers"):
        box_iou(bad, [0, 0, 1, 1])


def test_iou_accepts_ints_floats_and_numpy_numbers():
    assert temporal_iou([1, 3], [1.0, 3.0]) == 1.0
    assert temporal_iou([np.int64(0), np.float32(2)], [1, 2]) == pytest.approx(0.5)
    assert box_iou([0, 0, 2, 2], [np.float64(0), 0, 1, 2]) == pytest.approx(0.5)


def test_tube_with_string_span_is_refused():
    gt = {"span": [0.0, 1.0], "boxes": {"0.0": [0, 0, 1, 1]}}
    with pytest.raises(ValueError, match="needs numbers"):
        tube_viou({"span": ["0", 1.0], "boxes": {}}, gt, [0.0, 0.5])


# --- MRA ------------------------------------------------------------------------------------------

def test_mra_thresholds_are_vsi_bench_ones():
    assert MRA_THRESHOLDS == pytest.approx([0.5 + 0.05 * k for k in range(10)])


@pytest.mark.parametrize("pred, truth, mra", [
    (10, 10, 1.0), (10.4, 10, 1.0),   # 4 % error: below 1 − 0.95 = 5 %
    (10.5, 10, 0.9),                  # exactly 5 %: not < 5 %, fails θ = 0.95 only
    (14, 10, 0.2),                    # 40 %: passes θ = 0.50, 0.55 (< 50 %, < 45 %), not 0.60 (< 40 %)
    (6, 10, 0.2), (15, 10, 0.0), (-10, 10, 0.0), (-7, -8, 0.8),  # 12.5 %: θ ≤ 0.85 pass
    (0, 0, 1.0), (0.001, 0, 0.0),
])
def test_mra_matches_definition(pred, truth, mra):
    assert mean_relative_accuracy(pred, truth) == pytest.approx(mra)


def test_mra_equals_brute_force_definition_off_the_boundaries():
    rng = np.random.default_rng(0)
    for truth, pred in zip(rng.uniform(-50, 50, 300), rng.uniform(-80, 80, 300)):
        rel = abs(pred - truth) / abs(truth)
        expected = np.mean([rel < 1 - t for t in np.arange(0.5, 0.951, 0.05)])
        assert mean_relative_accuracy(pred, truth) == pytest.approx(expected)


def test_regression_verdict_carries_mra_and_keeps_its_score():
    verdict = verify_regression(wrap("14"), "10")
    assert verdict.score == pytest.approx(0.6) and verdict.details == {"mra": 0.2}
    assert verify_regression(wrap("two or three"), "10").details == {"mra": 0.0}


# --- official ROUGE -------------------------------------------------------------------------------

def test_rouge_official_is_the_stemmed_rouge_score_mean():
    ref, hyp = "The cat is running across the road", "the cats ran across a road"
    scores = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(ref, hyp)
    expected = sum(s.fmeasure for s in scores.values()) / 3
    assert rouge_official(hyp, ref) == pytest.approx(expected)
    assert rouge_official("cats running", "cat runs") == pytest.approx(1.0)  # stemming
    assert rouge_official("dog", "dog") == pytest.approx(2 / 3)  # a one-word reference has no bigram
    assert rouge_official("猫", "猫") == 0.0  # the default tokenizer keeps ASCII only


def test_free_form_score_is_unchanged_and_official_rouge_is_a_detail():
    verdict = verify_free_form(wrap("the cats run"), "the cat runs")
    assert verdict.score == pytest.approx(2 / 9)  # unstemmed: rouge1 = rougeL = 1/3, rouge2 = 0
    assert verdict.details["rouge_official"] == pytest.approx(1.0)


# --- metrics and rewards --------------------------------------------------------------------------

def _row(rid: str, ptype: str, answer: str, completion: str) -> dict:
    record = {"id": rid, "problem_type": ptype, "answer": answer}
    return item_result(rid, ptype, verify(record, completion))


def test_aggregate_reports_mra_and_official_rouge_per_type():
    items = [_row("r1", "regression", "10", wrap("14")), _row("r2", "regression", "10", wrap("10")),
             _row("f1", "free_form", "the cat runs", wrap("the cats run"))]
    out = aggregate(items, n_boot=20)
    assert out["per_type"]["regression"]["MRA"]["value"] == pytest.approx(0.6)
    assert out["per_type"]["regression"]["score"]["value"] == pytest.approx(0.8)
    assert out["per_type"]["free_form"]["rouge_official"]["value"] == pytest.approx(1.0)
    assert set(out["summary"]) == {"accuracy", "m_tIoU", "m_vIoU", "AM", "LGM"}
    assert out["summary"]["accuracy"]["value"] == pytest.approx((0.6 + 1.0 + 2 / 9) / 3)


def test_aggregate_omits_mra_for_rows_written_before_it_existed():
    old = {"id": "r1", "problem_type": "regression", "score": 0.6, "details": {}}
    assert "MRA" not in aggregate([old], n_boot=5)["per_type"]["regression"]


def test_mra_and_rouge_official_rewards_by_name():
    spec = [{"name": "accuracy", "weight": 1.0, "kwargs": {"types": ["multiple_choice"]}},
            {"name": "mra", "weight": 1.0, "kwargs": {}},
            {"name": "rouge_official", "weight": 1.0, "kwargs": {}}]
    funcs, _ = build_rewards(spec)
    fn = {f.__name__: f for f in funcs}
    cols = {"problem_type": ["regression", "free_form", "multiple_choice"],
            "answer": ["10", "the cat runs", "A"], "options": [None, None, ["x", "y"]]}
    completions = [wrap("14"), wrap("the cats run"), wrap("A")]
    assert fn["mra"](completions, **cols) == [pytest.approx(0.2), None, None]
    assert fn["rouge_official"](completions, **cols) == [None, pytest.approx(1.0), None]


@pytest.mark.parametrize("name", ["mra", "rouge_official"])
def test_new_rewards_cannot_pay_a_type_the_accuracy_reward_already_pays(name):
    with pytest.raises(ValueError, match="already scored by accuracy"):
        build_rewards([{"name": "accuracy", "weight": 1.0, "kwargs": {}}, {"name": name, "weight": 1.0}])


def test_default_reward_spec_does_not_use_the_new_rewards():
    assert {f.__name__ for f in build_rewards(DEFAULT_REWARDS)[0]}.isdisjoint({"mra", "rouge_official"})


def test_verify_names_the_record_when_a_grounding_answer_holds_text():
    record = {"id": "tg-7", "problem_type": "temporal_grounding", "answer": ["1.0", 2.0]}
    with pytest.raises(RecordError, match="tg-7"):
        verify(record, wrap("1.0 to 2.0"))
