"""The synthetic world: determinism, configuration errors, splits and question invariants."""
import hashlib
import json
from dataclasses import replace

import pytest

from stages.generate import records_for, run
from videoreasoner.data.world.streams import scene_for
from videoreasoner.core.schema import PROBLEM_TYPES
from videoreasoner.data.world.config import WorldConfig
from videoreasoner.data.world.questions import fmt_s

SMALL = WorldConfig(seed=3, videos={"train": 6, "val": 2, "test": 4}, workers=1)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_byte_identical_annotations_whatever_the_worker_count(tmp_path):
    run(SMALL, tmp_path / "a")
    run(replace(SMALL, workers=2), tmp_path / "b")
    assert digest(tmp_path / "a/annotations.jsonl") == digest(tmp_path / "b/annotations.jsonl")
    run(replace(SMALL, seed=4), tmp_path / "c")
    assert digest(tmp_path / "a/annotations.jsonl") != digest(tmp_path / "c/annotations.jsonl")


def test_every_problem_type_of_the_world_is_generated_with_a_reasoning(tmp_path):
    summary = run(SMALL, tmp_path)
    records = [json.loads(x) for x in (tmp_path / "annotations.jsonl").read_text().splitlines()]
    assert summary["records"] == len(records) == len({r["id"] for r in records})
    reasoning = [r for r in records if r["meta"]["kind"] == "reasoning"]
    assert {r["problem_type"] for r in reasoning} == set(PROBLEM_TYPES) - {"ocr"}
    assert all(r["reasoning"] for r in reasoning)
    perception = [r for r in records if r["meta"]["kind"] == "perception"]
    assert perception and all("reasoning" not in r for r in perception)
    assert {r["split"] for r in perception} <= set(SMALL.perception_splits)
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 12


def test_no_video_is_in_two_splits(tmp_path):
    run(SMALL, tmp_path)
    records = [json.loads(x) for x in (tmp_path / "annotations.jsonl").read_text().splitlines()]
    splits_of = {}
    for r in records:
        splits_of.setdefault(r["video"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())


@pytest.mark.parametrize("index", range(20))
def test_answers_agree_with_the_scene_and_the_reasoning(index):
    cfg = replace(SMALL, boundary_grid_s=0.25)  # boundaries anywhere on the frame grid
    scene, _ = scene_for(cfg, "train", index)
    names = {o.name: o for o in scene.objects}
    assert len({o.colour for o in scene.objects}) == len({o.shape for o in scene.objects}) == len(scene.objects)
    assert len({o.enter for o in scene.objects}) == len(scene.objects)
    for r in records_for(cfg, "train", index):
        obj = next((o for n, o in names.items() if n in r["question"]), None)
        if r["problem_type"] == "temporal_grounding":
            assert r["answer"] == [obj.enter, obj.exit]
            if r["meta"]["kind"] == "reasoning":  # perception items answer directly, without reasoning
                assert f"visible from {fmt_s(obj.enter)} to {fmt_s(obj.exit)} s" in r["reasoning"]
            else:
                assert "reasoning" not in r
            assert 0 <= obj.enter < obj.exit <= scene.duration
        if r["problem_type"] == "multiple_choice":
            assert len(r["options"]) == len(set(r["options"])) >= 2
            correct = r["options"][ord(r["answer"]) - ord("A")]
            if r["meta"]["kind"] == "reasoning":
                assert f"{correct} is option {r['answer']}" in r["reasoning"]
        if r["meta"]["task"] == "count":
            assert int(r["answer"]) == len(scene.objects)
        if r["problem_type"] == "spatio_temporal_grounding":
            times = [float(t) for t in r["answer"]["boxes"]]
            assert all(obj.enter <= t < obj.exit for t in times)
            assert all(0 <= v <= 1 for box in r["answer"]["boxes"].values() for v in box)


SCENE_WIDE_TASKS = {"count", "count_at_time", "order", "caption"}  # chains about the whole clip or frame


@pytest.mark.parametrize("index", range(20))
def test_a_chain_states_only_what_its_question_needs(index):
    """A chain about one object names no other object, and states the edges of entry and exit only where
    the direction follows from them: each extra fact is one more thing a small model gets wrong before
    its answer (README, "Short chains")."""
    scene, _ = scene_for(SMALL, "train", index)
    for r in records_for(SMALL, "train", index):
        if r["meta"]["kind"] != "reasoning":
            continue
        task, chain = r["meta"]["task"], r["reasoning"]
        if task not in SCENE_WIDE_TASKS:
            # a question names its object by colour, shape or both; no two objects of a clip share either
            asked = [o for o in scene.objects if o.shape in r["question"] or o.colour in r["question"]]
            others = [o.name for o in scene.objects if o not in asked]
            assert len(asked) == 1 and not any(name in chain for name in others), (task, chain)
        assert (" edge " in chain) == (task == "direction"), (task, chain)


@pytest.mark.parametrize("key,value,message", [
    ("fps", 0, "fps"),
    ("width", 111, "width/height"),
    ("objects", (0, 3), "objects"),
    ("objects", (2, 9), "objects"),
    ("boundary_grid_s", 0.3, "boundary_grid_s"),
    ("radius_px", (20, 40), "radius_px"),
    ("colours", ("red", "mauve", "blue", "green"), "colours"),
    ("items_per_video", {"essay": 1}, "items_per_video"),
])
def test_bad_world_settings_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=f"data.synthetic.{message}"):
        replace(SMALL, **{key: value}).check()


def test_unknown_param_key_is_rejected():
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        WorldConfig.from_params({"colour": ["red"]})
