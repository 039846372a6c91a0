"""evaluate stage: predictions files the scorer re-scores to the same numbers, controls, settings, report."""
import json

import pytest

from videoreasoner.answers.format import format_target
from videoreasoner.core.atomic import read_jsonl, write_jsonl
from videoreasoner.inference.controls import best_constant_answers
from stages.evaluate import EvalRun, run
from videoreasoner.inference.engines import Generation
from videoreasoner.answers.score import score_predictions
from tests.test_tts import records
from tests.test_tts_strategies import FakeEngine

MODELS = ["base", "sft", "rl", "rl_tts"]


def sees_video(record, frames, k, sampled, transform):
    """Right with the real frames, a wrong constant under a control transform."""
    if transform is None:
        return Generation(format_target(record), (-0.5,) * 8)
    wrong = "<answer>B</answer>" if record["problem_type"] == "multiple_choice" else "<answer>7.0 to 8.0</answer>"
    return Generation("<think>?</think>" + wrong, (-1.0,) * 4)


@pytest.fixture()
def evaluated(tmp_path):
    rows = [dict(r, split="test") for r in records()]
    write_jsonl(tmp_path / "test.jsonl", rows)
    write_jsonl(tmp_path / "train.jsonl", [dict(r, split="train") for r in records()])
    (tmp_path / "policy.json").write_text(json.dumps({"strategy": "self_consistency", "n": 3, "frames": 4,
                                                      "decoding": {"do_sample": True, "max_new_tokens": 8}}))
    engines = {name: FakeEngine(sees_video) for name in MODELS}
    metrics = run(EvalRun(eval={"max_items_per_type": 2, "n_boot": 200}, test_file=tmp_path / "test.jsonl",
                          train_file=tmp_path / "train.jsonl", policy_file=tmp_path / "policy.json",
                          curve_file=None, out_dir=tmp_path / "eval", engines=engines, tracking=False,
                          model_dirs={name: tmp_path / name for name in MODELS}))
    return tmp_path, metrics, engines


def test_predictions_rescore_to_the_same_numbers(evaluated):
    root, metrics, _ = evaluated
    items = read_jsonl(root / "eval/items.jsonl")
    assert len(items) == 4  # two per problem type
    for name in MODELS:
        for suffix, block in [("", metrics["models"][name]), *[(f".{c}", b) for c, b in
                                                               metrics["models"][name]["controls"].items()]]:
            predictions = read_jsonl(root / f"eval/predictions/{name}{suffix}.jsonl")
            assert all(set(p) == {"id", "prediction"} for p in predictions)
            again, _ = score_predictions(items, predictions, 0, n_boot=200)
            assert again == block["metrics"], (name, suffix)
    on_disk = json.loads((root / "eval/metrics.json").read_text())
    assert on_disk["models"]["rl"]["metrics"] == json.loads(json.dumps(metrics["models"]["rl"]["metrics"]))


def test_controls_and_gap_to_them(evaluated):
    root, metrics, engines = evaluated
    rl = metrics["models"]["rl_tts"]
    assert rl["metrics"]["overall"]["score"]["value"] == 1.0
    assert rl["controls"]["blank"]["metrics"]["overall"]["score"]["value"] < 1.0
    assert rl["video_use"]["blank"]["overall"] > 0 and rl["video_use"]["shuffled"]["overall"] > 0
    assert set(rl["video_use"]) == {"blank", "shuffled", "constant"}
    assert rl["cost"]["generations_per_item"] == 3  # the policy's samples
    assert engines["rl_tts"].calls[0]["n"] == 3 and engines["rl"].calls[0]["n"] == 1
    assert rl["mc_accuracy"] == 1.0 and "temporal_miou" in rl  # flat names the registry gates read
    summary = json.loads((root / "eval/summary.json").read_text())
    assert summary["headline"]["AM"] is None or summary["headline"]["overall"] == 1.0
    assert set(summary) >= {"headline", "constant", "base", "rl_tts_blank", "sft_shuffled"}
    ladder = (root / "eval/ladder.csv").read_text().splitlines()
    assert ladder[0].startswith("model,AM") and ladder[4].startswith("rl + policy") and ladder[5].startswith("constant")


def test_ladder_gains_are_paired_am_differences_between_rungs(evaluated):
    root, metrics, _ = evaluated
    gains = metrics["ladder_gains"]
    assert list(gains) == ["sft-base", "rl-sft", "rl_tts-rl"]
    am = {name: m["metrics"]["summary"]["AM"]["value"] for name, m in metrics["models"].items()}
    for step, gain in gains.items():
        later, earlier = step.split("-")
        if am[later] is None or am[earlier] is None:
            assert gain["value"] is None
        else:
            assert gain["value"] == pytest.approx(am[later] - am[earlier])
            assert gain["ci95"][0] <= gain["value"] <= gain["ci95"][1]
    summary = json.loads((root / "eval/summary.json").read_text())
    assert summary["ladder_gains"] == {k: g["value"] for k, g in gains.items()}
    by_type = metrics["ladder_gains_by_type"]
    assert list(by_type) == list(gains)
    for step, gain in by_type.items():
        later, earlier = step.split("-")
        assert gain["regressed"] == [t for t, g in gain["per_type"].items() if g["ci95"] and g["ci95"][1] < 0]
        per_type = {name: metrics["models"][name]["metrics"]["per_type"] for name in (later, earlier)}
        assert set(gain["per_type"]) == set(per_type[later]) and gain["per_type"]
        for ptype, g in gain["per_type"].items():
            expected = per_type[later][ptype]["score"]["value"] - per_type[earlier][ptype]["score"]["value"]
            assert g["value"] == pytest.approx(expected)


def test_settings_recorded(evaluated):
    root, metrics, _ = evaluated
    settings = metrics["settings"]
    for key in ("frames", "pixels", "prompt_version", "decoding", "tts_policy", "models", "items", "seed", "n_boot",
                "machine"):
        assert key in settings, key
    assert settings["tts_policy"]["strategy"] == "self_consistency"
    assert settings["machine"]["cpu"] and settings["machine"]["blas"] in ("mkl", "other")
    assert set(settings["models"]) == set(MODELS)
    html = (root / "eval/report.html").read_text()
    assert "rl + policy" in html and "http://" not in html and "https://" not in html
    assert "Gain of each rung per problem type" in html


def test_sources_choose_the_scored_records_and_results_are_broken_down_by_source(tmp_path):
    """Issue 18: evaluate took the first N test items per type in file order, so a user's own records
    were never picked, and nothing was reported per source. Now params eval.sources chooses records by
    source and split, at most max_items_per_type of each type from each source are drawn at random, and
    metrics.json and the report show each source."""
    world = [dict(r, split="test", source="world/v1", id=f"world/v1:{r['id']}{k}") for k in range(4)
             for r in records()]
    mine = [dict(r, split="val", source="mine/v1", id=f"mine/v1:{r['id']}") for r in records()]
    write_jsonl(tmp_path / "test.jsonl", world)
    write_jsonl(tmp_path / "val.jsonl", mine)
    write_jsonl(tmp_path / "train.jsonl", [dict(r, split="train") for r in records()])
    sources = [{"source": "world/*", "splits": ["test"]}, {"source": "mine/v1", "splits": ["val"]}]
    metrics = run(EvalRun(eval={"models": ["rl"], "sources": sources, "max_items_per_type": 2, "n_boot": 50,
                                "controls": [], "protocols": ["strict"]},
                          test_file=tmp_path / "test.jsonl", val_file=tmp_path / "val.jsonl",
                          train_file=tmp_path / "train.jsonl", curve_file=None, out_dir=tmp_path / "eval",
                          engines={"rl": FakeEngine(sees_video)}, tracking=False, model_dirs={"rl": tmp_path / "rl"},
                          model_uri="models:/video-reasoner@champion"))
    items = read_jsonl(tmp_path / "eval/items.jsonl")
    assert metrics["settings"]["items"]["drawn"] == {s: {"multiple_choice": 2, "temporal_grounding": 2}
                                                     for s in ("mine/v1", "world/v1")}
    def world_mc(rows):
        return [r["id"] for r in rows if r["source"] == "world/v1" and r["problem_type"] == "multiple_choice"]
    assert world_mc(items) != world_mc(world)[:2]  # drawn at random, not the first two in file order
    by_source = metrics["models"]["rl"]["by_source"]
    assert set(by_source) == {"mine/v1", "world/v1"} and all(m["n"] == 4 for m in by_source.values())
    assert by_source["mine/v1"]["overall"]["score"]["value"] == 1.0
    assert metrics["settings"]["models"]["rl"]["uri"] == "models:/video-reasoner@champion"
    assert metrics["models"]["rl"]["mc_accuracy"] == 1.0  # the flat names the registry gates read stay
    html = (tmp_path / "eval/report.html").read_text()
    assert "Per source" in html and "mine/v1" in html and "world/v1" in html
    with pytest.raises(ValueError, match="no reasoning record matches"):
        run(EvalRun(eval={"models": ["rl"], "sources": [{"source": "other", "splits": ["test"]}]},
                    test_file=tmp_path / "test.jsonl", train_file=tmp_path / "train.jsonl", out_dir=tmp_path / "x",
                    engines={"rl": FakeEngine(sees_video)}, tracking=False, model_dirs={"rl": tmp_path / "rl"}))


def test_best_constant_answer_maximises_the_train_score():
    train = [dict(r, split="train") for r in records()]
    constants = best_constant_answers(train)
    # multiple choice answers are A, B, A: the constant is A; spans [1,5], [2,5], [3,5]: a span ending at 5
    assert constants["multiple_choice"]["answer"] == "A"
    assert constants["multiple_choice"]["train_score"] == pytest.approx(2 / 3)
    assert constants["temporal_grounding"]["completion"].endswith("to 5.0</answer>")


@pytest.mark.slow
def test_evaluate_end_to_end_on_a_tiny_model(tmp_path):
    from videoreasoner.answers.score import main as score_main
    from tests.helpers_world import VIDEO
    from tests.test_inference import build_tiny_workspace

    root = build_tiny_workspace(tmp_path)
    (root / "policy.json").write_text(json.dumps({"strategy": "confidence_vote", "n": 2, "frames": 2,
                                                  "decoding": {"do_sample": True, "max_new_tokens": 6}}))
    base = root / "models/base"
    metrics = run(EvalRun(eval={"max_items_per_type": 1, "decoding": {"max_new_tokens": 6}}, video=VIDEO,
                          test_file=root / "data/validated/test.jsonl", train_file=root / "data/validated/train.jsonl",
                          policy_file=root / "policy.json", curve_file=None, video_root=root, out_dir=root / "eval",
                          model_dirs={name: base for name in MODELS}, tracking=False))
    assert metrics["models"]["rl_tts"]["cost"]["generations_per_item"] == 2
    assert metrics["settings"]["models"]["base"]["version"] == metrics["models"]["sft"]["model_version"]
    assert score_main(["--split", str(root / "eval/items.jsonl"), "--predictions",
                       str(root / "eval/predictions/sft.jsonl"), "--out", str(root / "rescored")]) == 0
    rescored = json.loads((root / "rescored/metrics.json").read_text())
    assert {k: v for k, v in rescored.items() if k != "coverage"} == \
        {k: v for k, v in json.loads((root / "eval/metrics.json").read_text())["models"]["sft"]["metrics"].items()
         if k != "coverage"}
