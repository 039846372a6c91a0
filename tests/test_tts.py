"""tts stage: the operating-point rule (table-driven on fake curves) and a sweep on a fake engine."""
import csv
import json

import pytest

from videoreasoner.answers.format import format_target
from videoreasoner.core.atomic import write_jsonl
from videoreasoner.inference.engines import Generation
from stages.tts import TTSRun, run, settings
from videoreasoner.inference.tts_policy import choose_point, metric_value
from videoreasoner.inference.tts_strategies import with_sampler
from tests.test_tts_strategies import FakeEngine, FakeFrames


def point(name, metric, tokens, generations=1.0):
    return {"point": name, "metric": metric, "tokens_per_item": tokens, "seconds_per_item": tokens / 100,
            "generations_per_item": generations}


CURVE = [point("greedy f4", 0.50, 100), point("sc n4 f4", 0.58, 400, 4), point("sc n8 f8", 0.60, 800, 8),
         point("bon n4 f8", 0.595, 450, 4), point("broken", None, 10)]


@pytest.mark.parametrize("rule, expected", [
    ({"name": "cheapest_within", "epsilon": 0.0}, "sc n8 f8"),
    ({"name": "cheapest_within", "epsilon": 0.01}, "bon n4 f8"),
    ({"name": "cheapest_within", "epsilon": 0.025}, "sc n4 f4"),
    ({"name": "cheapest_within", "epsilon": 0.2}, "greedy f4"),
    ({"name": "best"}, "sc n8 f8"),
    ({"name": "cheapest_within", "epsilon": 0.01, "cost": "seconds_per_item"}, "bon n4 f8"),
])
def test_cheapest_point_within_epsilon_of_the_best(rule, expected):
    assert choose_point(CURVE, rule)["point"] == expected


def test_points_within_the_cost_tolerance_count_as_equally_cheap():
    rows = [point("greedy f2", 0.243, 84), point("greedy f4", 0.252, 86), point("bon n4 f2", 0.274, 320, 4)]
    rule = {"name": "cheapest_within", "epsilon": 0.05}
    assert choose_point(rows, rule)["point"] == "greedy f2"  # strictly cheapest, 2 tokens cheaper
    assert choose_point(rows, {**rule, "cost_tolerance": 0.1})["point"] == "greedy f4"  # better, as cheap
    assert choose_point(rows, {**rule, "cost_tolerance": 5.0})["point"] == "bon n4 f2"  # all as cheap: the best
    assert choose_point(rows, {**rule, "epsilon": 0.0, "cost_tolerance": 0.1})["point"] == "bon n4 f2"
    with pytest.raises(ValueError, match="tts.rule.cost_tolerance"):
        choose_point(rows, {**rule, "cost_tolerance": -0.1})


def test_epsilon_from_the_best_points_interval():
    rows = [{**point("greedy", 0.21, 80), "metric_low": 0.10}, {**point("bon", 0.23, 390, 4), "metric_low": 0.12},
            {**point("sc", 0.18, 330, 4), "metric_low": 0.08}]
    assert choose_point(rows, {"name": "cheapest_within", "epsilon": "ci95"})["point"] == "greedy"
    rows[2]["metric"] = rows[1]["metric_low"] = 0.22  # greedy now below the best's lower bound
    assert choose_point(rows, {"name": "cheapest_within", "epsilon": "ci95"})["point"] == "sc"
    rows[1]["metric_low"] = None  # no interval: the best point itself
    assert choose_point(rows, {"name": "cheapest_within", "epsilon": "ci95"})["point"] == "bon"
    with pytest.raises(ValueError, match="tts.rule.epsilon"):
        choose_point(rows, {"name": "cheapest_within", "epsilon": "wide"})


def test_ties_in_cost_go_to_the_better_metric_and_errors_are_named():
    rows = [point("a", 0.5, 100), point("b", 0.55, 100)]
    assert choose_point(rows, {"epsilon": 0.1})["point"] == "b"
    with pytest.raises(ValueError, match="no sweep point"):
        choose_point([point("x", None, 1)], {})
    with pytest.raises(ValueError, match="unknown"):
        choose_point(rows, {"name": "pareto"})
    with pytest.raises(ValueError, match="unknown key 'samples'"):
        settings({"samples": 3})
    with pytest.raises(ValueError, match="tts.samplers: unknown 'random'"):
        settings({"samplers": ["uniform", "random"]})
    with pytest.raises(ValueError, match="tts.samplers: empty"):
        settings({"samplers": []})


def test_metric_paths_include_dotted_metric_names():
    metrics = {"summary": {"AM": {"value": 0.4, "ci95": [0.3, 0.5]}},
               "per_type": {"temporal_grounding": {"R1@0.5": {"value": 0.2, "ci95": None}}}}
    assert metric_value(metrics, "summary.AM") == (0.4, [0.3, 0.5])
    assert metric_value(metrics, "per_type.temporal_grounding.R1@0.5") == (0.2, None)
    assert metric_value(metrics, "per_type.ocr.score") == (None, None)


def records():
    rows = []
    for i in range(3):
        rows.append({"id": f"mc{i}", "video": "v.mp4", "duration": 8.0, "problem_type": "multiple_choice",
                     "question": "Colour?", "options": ["red", "blue"], "answer": "AB"[i % 2], "split": "val",
                     "source": "t", "reasoning": "It is so."})
        rows.append({"id": f"tg{i}", "video": "v.mp4", "duration": 8.0, "problem_type": "temporal_grounding",
                     "question": "When?", "answer": [1.0 + i, 5.0], "split": "val", "source": "t",
                     "reasoning": "Then."})
    return rows


def oracle_at(min_frames):
    """Right with >= min_frames frames (greedy or sampled); below, wrong greedy and split samples."""
    def script(record, frames, k, sampled, transform):
        if frames >= min_frames:
            return Generation(format_target(record), (-0.5,) * 10)
        wrong = {"multiple_choice": "<answer>{}</answer>".format("BA"[k % 2] if sampled else "B"),
                 "temporal_grounding": "<answer>7.0 to 8.0</answer>"}[record["problem_type"]]
        return Generation("<think>?</think>" + wrong, (-2.0,) * 5)
    return script


def test_sweep_writes_curve_and_policy(tmp_path):
    write_jsonl(tmp_path / "val.jsonl", records())
    engine = FakeEngine(oracle_at(4), loglik=lambda r, c: -1.0)
    params = {"n": [2, 4], "frames": [2, 4], "start_frames": 2, "n_boot": 50, "metric": "overall.score",
              "rule": {"name": "cheapest_within", "epsilon": 0.01}}
    policy = run(TTSRun(tts=params, val_file=tmp_path / "val.jsonl", model_dir=tmp_path / "none",
                        out_dir=tmp_path / "tts", tracking=False, engine=engine))
    rows = list(csv.DictReader(open(tmp_path / "tts/curve.csv")))
    assert len(rows) == 2 * (1 + 2 * 4)  # frames × (greedy + n values × sampled strategies)
    assert [r["point"] for r in rows if r["chosen"] == "1"] == ["greedy n=1 frames=4 sampler=uniform"]
    assert policy["strategy"] == "greedy" and policy["frames"] == 4 and policy["value"] == 1.0
    assert policy["sampler"] == "uniform" and {r["sampler"] for r in rows} == {"uniform"}
    assert json.loads((tmp_path / "tts/policy.json").read_text())["decoding"]["do_sample"] is False
    s2d = {r["point"].replace(" sampler=uniform", ""): r for r in rows if r["strategy"] == "sparse_to_dense"}
    # at a 4-frame cap, the 2-frame samples disagree on multiple choice, so those items also pay for 4 frames
    assert float(s2d["sparse_to_dense n=2 frames=4"]["tokens_per_item"]) > \
        float(s2d["sparse_to_dense n=2 frames=2"]["tokens_per_item"])
    # wrong spans that agree stop at 2 frames: sparse-to-dense only helps where samples disagree
    assert float(s2d["sparse_to_dense n=2 frames=4"]["metric"]) == 0.5
    # samples were drawn once per frame level (greedy + n_max samples), then replayed
    assert [(c["frames"], c["n"]) for c in engine.calls] == [(2, 1), (2, 4), (4, 1), (4, 4)]


class SamplerEngine(FakeEngine):
    """A fake engine that is right from 2 frames on under `keyframes` and never under `uniform`."""

    def generate(self, records, *, n=1, decoding=None, frames=None, desc=""):
        sampler = self.frames.video.sampler
        self.calls.append({"sampler": sampler, "frames": frames, "n": n})
        script = oracle_at(2 if sampler == "keyframes" else 99)
        return [[script(r, frames, k, decoding.do_sample, None) for k in range(n)] for r in records]

    def with_frames(self, source):
        clone = SamplerEngine(self.script, self.loglik_fn, source)
        clone.calls = self.calls
        return clone


def test_sampler_is_a_sweep_axis_and_the_policy_names_it(tmp_path):
    write_jsonl(tmp_path / "val.jsonl", records())
    engine = SamplerEngine(None, loglik=lambda r, c: -1.0)
    params = {"samplers": ["uniform", "keyframes"], "strategies": ["greedy", "self_consistency"], "n": [2],
              "frames": [2, 4], "n_boot": 50, "metric": "overall.score", "rule": {"name": "cheapest_within",
                                                                                     "epsilon": 0.0}}
    policy = run(TTSRun(tts=params, val_file=tmp_path / "val.jsonl", model_dir=tmp_path / "none",
                        out_dir=tmp_path / "tts", tracking=False, engine=engine))
    rows = list(csv.DictReader(open(tmp_path / "tts/curve.csv")))
    assert len(rows) == 2 * 2 * 2 and {r["sampler"] for r in rows} == {"uniform", "keyframes"}
    assert all(r["video_tokens_per_item"] == "" for r in rows)  # a fake engine never reaches the processor
    # only keyframes are right; at equal cost the first of its points in sweep order (2 frames) wins
    assert (policy["sampler"], policy["strategy"], policy["frames"]) == ("keyframes", "greedy", 2)
    assert [r["point"] for r in rows if r["chosen"] == "1"] == ["greedy n=1 frames=2 sampler=keyframes"]
    assert {c["sampler"] for c in engine.calls} == {"uniform", "keyframes"}
    # the policy's sampler is applied on top of params `video`, the rest of it unchanged
    swapped = with_sampler(FakeEngine(None), policy["sampler"])
    assert swapped.frames.video.sampler == "keyframes" and swapped.frames.video.max_frames == 8
    same = FakeEngine(None, frames=FakeFrames())
    assert with_sampler(same, "uniform") is same and with_sampler(same, None) is same
    # the registered model answers through apply_policy: it applies the policy's sampler too
    from videoreasoner.inference.tts_strategies import apply_policy

    engine.calls.clear()
    apply_policy(engine, records()[:2], policy)
    assert [c["sampler"] for c in engine.calls] == ["keyframes"]
