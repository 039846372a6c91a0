"""Rewards: TRL's contract, per-sample problem types, None where a reward does not apply, the registry."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from videoreasoner.answers.format import format_target
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.training.rewards import DEFAULT_REWARDS, REGISTRY, build_rewards, completion_text
from videoreasoner.core.schema import PROBLEM_TYPES
from videoreasoner.answers.verifiers import verify


def records() -> list[dict]:
    return read_jsonl(Path(__file__).parent / "snapshots" / "sample_records.jsonl")


def columns(rows: list[dict]) -> dict[str, list]:
    """Dataset columns as TRL passes them: one list per field, one entry per completion."""
    keys = ("id", "problem_type", "answer", "options", "duration", "fps", "question")
    return {k: [r.get(k) for r in rows] for k in keys}


def by_name(spec: list[dict]) -> dict:
    funcs, _ = build_rewards(spec)
    return {f.__name__: f for f in funcs}


def test_default_rewards_build_and_cover_every_type_once():
    funcs, weights = build_rewards(DEFAULT_REWARDS)
    assert [f.__name__ for f in funcs] == ["format", "accuracy", "temporal_iou", "box_iou", "tube_iou"]
    assert weights == [0.5, 1.0, 1.0, 1.0, 1.0]
    task = [f for f in funcs if f.__name__ != "format"]
    covered = sorted(t for f in task for t in f.problem_types)
    assert covered == sorted(PROBLEM_TYPES)


def test_mixed_batch_scores_each_sample_by_its_own_type():
    """The Video-R1 bug: applying the first sample's type to the whole batch. Here every sample is
    scored as its own type, and the batch order does not matter."""
    rows = records()
    targets = [format_target(r) for r in rows]
    funcs, weights = build_rewards(DEFAULT_REWARDS)
    for order in (rows, rows[::-1]):
        comps = [format_target(r) for r in order]
        total = [0.0] * len(order)
        for f, w in zip(funcs, weights):
            for i, v in enumerate(f(comps, **columns(order))):
                total[i] += w * (v or 0.0)
        assert total == [1.5] * len(order)
    out = by_name(DEFAULT_REWARDS)["accuracy"](targets, **columns(rows))
    grounding = {"temporal_grounding", "spatial_grounding", "spatio_temporal_grounding"}
    assert [v is None for v in out] == [r["problem_type"] in grounding for r in rows]


def test_rewards_equal_the_verifier_scores():
    rows = records()
    comps = ["<think>x</think><answer>B</answer>", "<answer>3.0</answer>", "<answer>5</answer>",
             "<answer>it bounces</answer>", "<answer>STOP</answer>", "<answer>2 to 5</answer>",
             "<answer>[0.1, 0.2, 0.4, 0.6]</answer>", "<answer>1.0 to 2.0; 1.0: [0.1, 0.2, 0.3, 0.4]</answer>"]
    accuracy = by_name([{"name": "accuracy", "weight": 1.0, "kwargs": {}}])["accuracy"]
    assert accuracy(comps, **columns(rows)) == [verify(r, c).score for r, c in zip(rows, comps)]


def test_conversational_completions_and_answer_json_column():
    rows = [r for r in records() if r["problem_type"] in ("multiple_choice", "temporal_grounding")]
    conv = [[{"role": "assistant", "content": format_target(r)}] for r in rows]
    cols = columns(rows)
    cols["answer"] = [None] * len(rows)
    cols["answer_json"] = [json.dumps(r["answer"]) for r in rows]
    accuracy = by_name([{"name": "accuracy", "weight": 1.0, "kwargs": {}}])["accuracy"]
    assert accuracy(conv, **cols, trainer_state=None, completion_ids=[[1]] * len(rows)) == [1.0, 1.0]
    cols = columns(rows)
    cols["answer"] = [r["answer"] if isinstance(r["answer"], str) else json.dumps(r["answer"]) for r in rows]
    assert accuracy(conv, **cols) == [1.0, 1.0]   # grounding answers stored as JSON text


@pytest.mark.parametrize("completion, text", [
    ("plain", "plain"),
    ([{"role": "assistant", "content": "conv"}], "conv"),
    ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "ab"),
    ([], ""), (None, ""),
])
def test_completion_text(completion, text):
    assert completion_text(completion) == text


def test_format_reward_requires_a_parseable_answer_of_the_samples_type():
    rows = [r for r in records() if r["problem_type"] in ("multiple_choice", "temporal_grounding")]
    comps = ["<think>x</think><answer>B</answer>"] * 2
    fmt = by_name([{"name": "format", "weight": 1.0, "kwargs": {}}])["format"]
    assert fmt(comps, **columns(rows)) == [1.0, 0.0]
    loose = by_name([{"name": "format", "weight": 1.0, "kwargs": {"require_parse": False}}])["format"]
    assert loose(comps, **columns(rows)) == [1.0, 1.0]


def test_tube_reward_tiou_weight_and_temporal_distance_penalty():
    row = next(r for r in records() if r["problem_type"] == "spatio_temporal_grounding")
    comp = ["<answer>1.0 to 3.0</answer>"]            # right span, no boxes: tIoU 1, vIoU 0
    plain = by_name([{"name": "tube_iou", "weight": 1.0, "kwargs": {}}])["tube_iou"]
    mixed = by_name([{"name": "tube_iou", "weight": 1.0, "kwargs": {"tiou_weight": 0.5}}])["tube_iou"]
    assert plain(comp, **columns([row])) == [0.0] and mixed(comp, **columns([row])) == [0.5]
    row_tg = next(r for r in records() if r["problem_type"] == "temporal_grounding")
    pen = by_name([{"name": "temporal_iou", "weight": 1.0, "kwargs": {"distance_penalty": True}}])["temporal_iou"]
    assert pen(["<answer>2.5 to 8.0</answer>"], **columns([row_tg]))[0] == pytest.approx(4.5 / 5.5 * 0.9)


def test_length_reward_pays_only_correct_answers():
    row = records()[0]
    think = " ".join(["word"] * 20)
    length = by_name([{"name": "length", "weight": 0.2, "kwargs": {"min_words": 16, "max_words": 64}}])["length"]
    comps = [f"<think>{think}</think><answer>B</answer>", f"<think>{think}</think><answer>A</answer>"]
    assert length(comps, **columns([row, row])) == [1.0, 0.0]


@pytest.mark.parametrize("spec, message", [
    ([{"name": "nope", "weight": 1.0}], "unknown reward"),
    ([{"name": "format", "weight": 1.0, "kwargs": {"bogus": 1}}], "bad kwargs"),
    ([{"name": "format", "wieght": 1.0}], "expected keys"),
    ([{"name": "accuracy", "weight": 1.0}, {"name": "temporal_iou", "weight": 1.0}], "already scored"),
    ([{"name": "accuracy", "weight": 1.0, "kwargs": {"types": ["riddle"]}}], "unknown problem types"),
    ([{"name": "tube_iou", "weight": 1.0, "kwargs": {"tiou_weight": 2}}], "tiou_weight"),
])
def test_build_rewards_rejects_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        build_rewards(spec)


def test_duplicate_names_are_suffixed_and_registry_is_complete():
    funcs, _ = build_rewards([{"name": "format", "weight": 1.0}, {"name": "format", "weight": 0.1}])
    assert [f.__name__ for f in funcs] == ["format", "format_2"]
    assert {"format", "accuracy", "temporal_iou", "box_iou", "tube_iou", "length"} <= set(REGISTRY)


def test_missing_problem_type_column_is_an_error():
    fmt = by_name([{"name": "format", "weight": 1.0}])["format"]
    with pytest.raises(KeyError, match="problem_type"):
        fmt(["<answer>B</answer>"], answer=["B"])


def test_params_yaml_rewards_section_builds_and_matches_the_default():
    from videoreasoner.core.params import load_params
    from pathlib import Path

    spec = load_params(Path(__file__).resolve().parents[1] / "params.yaml")["rewards"]
    funcs, weights = build_rewards(spec)
    assert [f.__name__ for f in funcs] == [s["name"] for s in spec]
    assert spec == DEFAULT_REWARDS


@pytest.mark.parametrize("name, ptype, answer_json", [
    ("temporal_iou", "temporal_grounding", "[NaN, 2.0]"),
    ("box_iou", "spatial_grounding", '{"time": 2.0, "box": [0.1, 0.1, Infinity, 0.5]}'),
    ("tube_iou", "spatio_temporal_grounding", '{"span": [1.0, 3.0], "boxes": {"NaN": [0.1, 0.1, 0.3, 0.5]}}'),
    ("accuracy", "regression", '"nan"'),
])
def test_a_non_finite_answer_json_is_an_error_never_a_reward(name, ptype, answer_json):
    """json.loads reads NaN and Infinity: a NaN span once paid 1.0 for any completion."""
    rows = [r for r in records() if r["problem_type"] == ptype]
    cols = columns(rows)
    cols["answer_json"] = [answer_json] * len(rows)
    func = by_name(DEFAULT_REWARDS)[name]
    with pytest.raises(ValueError, match=f"{rows[0]['id']}: field 'answer'"):
        func([format_target(r) for r in rows], **cols)
