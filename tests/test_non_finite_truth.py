"""Non-finite ground truths (NaN, inf, in numbers, spans, boxes and box times): an error naming the
record and the field under every reward and the evaluation path, never a reward or a score. The records,
rewards and evaluation helpers are those of the reward-hacking probes (tests/test_reward_hacking.py)."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.test_reward_hacking import FUNCS, NUMBERS, RECORDS, TEXTS, columns, evaluate, honest_completions
from videoreasoner.answers.verifiers import verify

NAN, INF = float("nan"), float("inf")


def _first_box_time(r: dict) -> str:
    return next(iter(r["answer"]["boxes"]))


NON_FINITE_TRUTHS: dict[str, Callable[[dict], object]] = {
    "numerical_nan_text": lambda r: "nan" if r["problem_type"] in NUMBERS else None,
    "number_nan_float": lambda r: NAN if r["problem_type"] in NUMBERS else None,
    "number_inf_text": lambda r: "-Infinity" if r["problem_type"] in NUMBERS else None,
    "text_nan_float": lambda r: NAN if r["problem_type"] in TEXTS else None,
    "text_inf_float": lambda r: INF if r["problem_type"] in TEXTS else None,
    "span_start_nan": lambda r: [NAN, r["answer"][1]] if r["problem_type"] == "temporal_grounding" else None,
    "span_end_inf": lambda r: [r["answer"][0], INF] if r["problem_type"] == "temporal_grounding" else None,
    "span_json_nan": lambda r: "[NaN, 1.0]" if r["problem_type"] == "temporal_grounding" else None,
    "box_nan": lambda r: {**r["answer"], "box": [NAN, *r["answer"]["box"][1:]]}
    if r["problem_type"] == "spatial_grounding" else None,
    "box_time_inf": lambda r: {**r["answer"], "time": INF} if r["problem_type"] == "spatial_grounding" else None,
    "tube_span_nan": lambda r: {**r["answer"], "span": [r["answer"]["span"][0], NAN]}
    if r["problem_type"] == "spatio_temporal_grounding" else None,
    "tube_box_inf": lambda r: {**r["answer"], "boxes": {**r["answer"]["boxes"], _first_box_time(r): [0, 0, INF, 1]}}
    if r["problem_type"] == "spatio_temporal_grounding" else None,
    "tube_box_time_nan": lambda r: {**r["answer"], "boxes": {**r["answer"]["boxes"], "nan": [0, 0, 1, 1]}}
    if r["problem_type"] == "spatio_temporal_grounding" else None,
}


@pytest.mark.parametrize("corrupt", NON_FINITE_TRUTHS.values(), ids=NON_FINITE_TRUTHS.keys())
def test_a_non_finite_ground_truth_is_an_error_under_every_reward_and_the_evaluation(corrupt):
    from videoreasoner.core.schema import RecordError

    rows = [dict(r, answer=bad) for r in RECORDS if (bad := corrupt(r)) is not None]
    assert rows
    comps = honest_completions([r for r in RECORDS if corrupt(r) is not None])  # the original truth's answer
    for r, c in zip(rows, comps):
        with pytest.raises(RecordError, match="finite|not a single number") as info:
            verify(r, c)
        assert info.value.where == r["id"] and info.value.field == "answer"
    for func in FUNCS:
        if func.__name__ == "format":  # reads no ground truth
            continue
        if not any(r["problem_type"] in func.problem_types for r in rows):
            continue
        with pytest.raises(RecordError, match=rows[0]["id"] if rows[0]["problem_type"] in func.problem_types
                           else "answer"):
            func(comps, **columns(rows))
    with pytest.raises(RecordError, match="field 'answer'"):
        evaluate(rows, comps, strict=True)
