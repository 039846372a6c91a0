"""Dataset metrics: definitions on hand-computed sets, bootstrap determinism, the JSON structure."""
from __future__ import annotations

import json
import math

import pytest

from videoreasoner.answers.metrics import aggregate, item_result, paired_difference, paired_type_differences
from videoreasoner.answers.verifiers import Verdict


def tg(iou: float) -> dict:
    return {"problem_type": "temporal_grounding", "score": iou, "details": {"iou": iou}}


def st(tiou: float, viou: float) -> dict:
    return {"problem_type": "spatio_temporal_grounding", "score": viou, "details": {"tiou": tiou, "viou": viou}}


def mc(score: float) -> dict:
    return {"problem_type": "multiple_choice", "score": score, "details": {}}


def value(metric: dict) -> float | None:
    return metric["value"]


def test_temporal_recall_thresholds_are_inclusive_and_miou_is_the_mean():
    out = aggregate([tg(0.3), tg(0.5), tg(0.7), tg(0.0)], n_boot=50)["per_type"]["temporal_grounding"]
    assert out["n"] == 4
    assert value(out["R1@0.3"]) == 0.75 and value(out["R1@0.5"]) == 0.5 and value(out["R1@0.7"]) == 0.25
    assert value(out["mIoU"]) == pytest.approx(0.375)


def test_viou_thresholds_are_strict():
    out = aggregate([st(0.6, 0.3), st(0.8, 0.5), st(1.0, 0.9)], n_boot=50)["per_type"]["spatio_temporal_grounding"]
    assert value(out["vIoU@0.3"]) == pytest.approx(2 / 3) and value(out["vIoU@0.5"]) == pytest.approx(1 / 3)
    assert value(out["m_tIoU"]) == pytest.approx(0.8) and value(out["m_vIoU"]) == pytest.approx(1.7 / 3)


def test_am_and_lgm():
    items = [mc(1.0), mc(0.0), tg(0.5), st(0.5, 0.2)]
    summary = aggregate(items, n_boot=50)["summary"]
    acc, tiou, viou = 0.5, 0.5, 0.2
    assert value(summary["accuracy"]) == acc
    assert value(summary["m_tIoU"]) == pytest.approx(tiou)       # pools temporal IoU and tube tIoU
    assert value(summary["m_vIoU"]) == pytest.approx(viou)
    assert value(summary["AM"]) == pytest.approx((acc + tiou + viou) / 3)
    assert value(summary["LGM"]) == pytest.approx(-(math.log(0.5) + math.log(0.5) + math.log(0.8)) / 3)


def test_lgm_is_guarded_at_one_and_am_needs_all_components():
    perfect = aggregate([mc(1.0), tg(1.0), st(1.0, 1.0)], n_boot=20)["summary"]
    assert math.isfinite(value(perfect["LGM"])) and value(perfect["AM"]) == 1.0
    only_mc = aggregate([mc(1.0)], n_boot=20)["summary"]
    assert only_mc["AM"] == {"value": None, "ci95": None, "n": 1}
    assert value(only_mc["m_tIoU"]) is None


def test_bootstrap_is_seeded_and_brackets_the_value():
    items = [mc(float(i % 3 == 0)) for i in range(60)] + [tg(i / 60) for i in range(60)]
    a, b = aggregate(items, seed=1, n_boot=300), aggregate(items, seed=1, n_boot=300)
    c = aggregate(items, seed=2, n_boot=300)
    assert a == b and a != c
    for metric in (a["overall"]["score"], a["per_type"]["temporal_grounding"]["mIoU"]):
        low, high = metric["ci95"]
        assert low <= metric["value"] <= high and low < high


def test_adding_a_type_does_not_shift_another_types_interval():
    base = [mc(float(i % 2)) for i in range(40)]
    with_more = base + [tg(0.5)]
    assert (aggregate(base, n_boot=200)["per_type"]["multiple_choice"]["score"]
            == aggregate(with_more, n_boot=200)["per_type"]["multiple_choice"]["score"])


def test_structure_is_json_able_and_stable():
    out = aggregate([mc(1.0), tg(0.4)], n_boot=10)
    assert set(out) == {"n", "seed", "n_boot", "overall", "per_type", "summary"}
    assert set(out["summary"]) == {"accuracy", "m_tIoU", "m_vIoU", "AM", "LGM"}
    assert set(out["per_type"]["temporal_grounding"]) == {"n", "score", "mIoU", "R1@0.3", "R1@0.5", "R1@0.7"}
    assert json.loads(json.dumps(out)) == out


def test_missing_details_count_as_zero_and_bad_input_raises():
    out = aggregate([{"problem_type": "temporal_grounding", "score": 0.0}], n_boot=10)
    assert value(out["per_type"]["temporal_grounding"]["mIoU"]) == 0.0
    with pytest.raises(ValueError, match="riddle"):
        aggregate([{"problem_type": "riddle", "score": 1.0}])
    with pytest.raises(ValueError):
        aggregate([mc(1.0)], n_boot=0)
    assert aggregate([], n_boot=10)["overall"]["score"]["value"] is None


def test_item_result_row():
    row = item_result("x", "temporal_grounding", Verdict(0.5, [1.0, 2.0], {"iou": 0.5}), prediction="p")
    assert row == {"id": "x", "problem_type": "temporal_grounding", "score": 0.5, "parsed": [1.0, 2.0],
                   "details": {"iou": 0.5}, "error": None, "prediction": "p"}


def test_paired_difference_is_the_am_gap_with_a_paired_interval():
    rng = __import__("random").Random(0)
    a = [{**f(rng.random()), "id": f"{i}"} for i, f in enumerate([mc, tg] * 20)]
    a += [{**st(rng.random(), rng.random()), "id": f"s{i}"} for i in range(10)]
    better = [{**item, "score": min(1.0, item["score"] + 0.1),
               "details": {k: min(1.0, v + 0.1) for k, v in item["details"].items()}} for item in a]
    gap = paired_difference(a, list(reversed(better)), n_boot=200)  # matched by id, not by position
    am_a, am_b = aggregate(a, n_boot=10)["summary"]["AM"], aggregate(better, n_boot=10)["summary"]["AM"]
    assert gap["value"] == pytest.approx(value(am_b) - value(am_a)) and gap["n"] == am_a["n"]
    low, high = gap["ci95"]
    assert 0 < low <= gap["value"] <= high  # every item improves: the paired interval excludes 0
    own = aggregate(a, n_boot=200)["summary"]["AM"]["ci95"]
    assert high - low < (own[1] - own[0]) / 2  # far narrower than one model's own interval
    same = paired_difference(a, a, n_boot=50)
    assert same["value"] == 0 and same["ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="item id '0' is scored for one model only"):
        paired_difference(a, a[1:], n_boot=10)


def test_paired_type_differences_find_the_type_that_regressed():
    a = [{**mc(1.0), "id": f"m{i}"} for i in range(20)] + [{**tg(0.5), "id": f"t{i}"} for i in range(20)]
    b = [{**mc(0.0 if i < 15 else 1.0), "id": f"m{i}"} for i in range(20)]  # 15 of 20 now wrong
    b += [{**tg(0.5 + 0.02 * (i % 3)), "id": f"t{i}"} for i in reversed(range(20))]  # matched by id
    out = paired_type_differences(a, b, n_boot=200)
    assert list(out) == ["multiple_choice", "temporal_grounding"]
    assert out["multiple_choice"]["value"] == pytest.approx(-0.75) and out["multiple_choice"]["ci95"][1] < 0
    assert out["temporal_grounding"]["value"] > 0 and out["temporal_grounding"]["ci95"][0] >= 0
    with pytest.raises(ValueError, match="scored for one model only"):
        paired_type_differences(a, b[1:], n_boot=10)


@pytest.mark.parametrize("bad, field_text", [
    ({**mc(1.0), "id": "q7", "score": float("nan")}, "score is nan"),
    ({**mc(1.0), "id": "q7", "score": float("inf")}, "score is inf"),
    ({**mc(1.0), "id": "q7", "score": 87.5}, "score is 87.5"),  # a percentage, not a fraction
    ({**tg(0.5), "id": "q7", "details": {"iou": float("nan")}}, "details.iou is nan"),
    ({**st(0.5, 0.5), "id": "q7", "details": {"tiou": 0.5, "viou": -0.1}}, "details.viou is -0.1"),
    ({**mc(1.0), "id": "q7", "score": "1.0"}, "score is '1.0'"),
])
def test_a_value_outside_0_1_is_an_error_naming_the_item_never_a_silent_zero(bad, field_text):
    items = [mc(1.0), tg(0.4), st(0.5, 0.2), bad]
    with pytest.raises(ValueError, match="item id q7") as info:
        aggregate(items, n_boot=10)
    assert field_text in str(info.value)
    good = [dict(item, id=f"i{k}") for k, item in enumerate(items[:3])]
    with pytest.raises(ValueError, match="id q7"):
        paired_difference(good + [bad], good + [dict(bad, score=1.0, details={})], n_boot=10)
