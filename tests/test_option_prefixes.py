"""The one letter-prefix rule for options (videoreasoner/data/importers/option_prefixes.py), and the
importers that read options with it."""
import json

import pytest

from videoreasoner.core.schema import RecordError
from videoreasoner.data.importers.option_prefixes import prefix_letter, strip_option_prefixes
from tests.test_importers import load, make_video, vr1_items, write


@pytest.mark.parametrize("options", [
    ["A. a rabbit", "B. a dog"],
    ["(A) a rabbit", "(B) a dog"],
    ["A) a rabbit", "B) a dog"],
    ["A: a rabbit", "B:  a dog "],
])
def test_each_prefix_form_in_order_is_stripped_once(options):
    assert strip_option_prefixes(options, "f:1", "options") == (["a rabbit", "a dog"], True)


@pytest.mark.parametrize("options", [["a rabbit", "a dog"], ["U.S. Army", "A.M. radio"], ["A rabbit", "B-movie"]])
def test_options_without_a_prefix_are_kept(options):
    assert strip_option_prefixes(options, "f:1") == ([o.strip() for o in options], False)


@pytest.mark.parametrize("options, field, problem", [
    (["B. a rabbit", "C. a dog"], "options[0]", "carries letter B but is option A"),
    (["A. a rabbit", "C. a dog"], "options[1]", "carries letter C but is option B"),
    (["A. A. a rabbit", "B. B. a dog"], "options[0]", "repeats its letter prefix A"),
    (["A. a rabbit", "a dog"], "options[1]", "has no letter prefix B"),
    (["a rabbit", "B. a dog"], "options[0]", "has no letter prefix A"),
    (["a rabbit"], "options", "expected a list of 2 to 26 options"),
    (["a rabbit", ""], "options[1]", "not non-empty text"),
])
def test_a_prefix_that_does_not_fit_its_position_names_the_option(options, field, problem):
    with pytest.raises(RecordError) as exc_info:
        strip_option_prefixes(options, "data.jsonl:3 (id q1)")
    assert f"data.jsonl:3 (id q1): field '{field}'" in str(exc_info.value) and problem in str(exc_info.value)


def test_required_prefixes_refuse_bare_options():
    with pytest.raises(RecordError, match=r"options\[0\].*no letter prefix A"):
        strip_option_prefixes(["red", "blue"], "f", required=True)
    assert prefix_letter("(C) x") == ("C", "x") and prefix_letter("C.x") is None
    assert strip_option_prefixes(["A.red", "B) blue"], "f", required=True) == (["red", "blue"], True)


def test_video_r1_rejects_a_repeated_prefix(tmp_path):
    """Video-R1 options always carry letters; "A. A. red" used to become "A. red" and reach the prompt."""
    make_video(tmp_path / "raw/vr1/videos/a.mp4")
    items = [{**vr1_items()[0], "options": ["A. A. red", "B. B. blue"]}]
    path = write(tmp_path, "raw/vr1/data.json", items)
    with pytest.raises(RecordError, match=r"data\.json\[0\]: field 'options\[0\]': .*repeats its letter prefix A"):
        load(tmp_path, name="vr1", format="video_r1", path=path)


def test_sharegpt_option_lines_follow_the_rule(tmp_path):
    make_video(tmp_path / "sg/a.mp4")
    turn = {"role": "user", "content": "<video>Which colour?\n(A) red\n(B) blue"}
    items = [{"messages": [turn, {"role": "assistant", "content": "B"}], "videos": ["a.mp4"]}]
    path = write(tmp_path, "sg/data.json", json.dumps(items))
    (rec,), _ = load(tmp_path, name="sg", format="sharegpt", path=path, problem_type="multiple_choice")
    assert rec["question"] == "Which colour?" and rec["options"] == ["red", "blue"] and rec["answer"] == "B"


def test_synthetic_rows_strip_prefixes_and_keep_bare_options_as_written(tmp_path):
    row = {"id": "s1", "video": "v.mp4", "duration": 2.0, "problem_type": "multiple_choice", "question": "Which?",
           "answer": "A", "split": "train", "source": "synthetic-world/v1"}
    lines = [{**row, "options": ["A. a rabbit", "B. a dog"]}, {**row, "id": "s2", "options": ["red ", "blue"]}]
    path = write(tmp_path, "syn/annotations.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    recs, entry = load(tmp_path, name="syn", format="synthetic", path=path, split=None)
    assert [r["options"] for r in recs] == [["a rabbit", "a dog"], ["red ", "blue"]]
    assert entry["counters"] == {"stripped_option_prefixes": 1}
