"""Each importer on a small fixture it writes itself: fields of the happy path, errors that name
the file, the line or index, and the field."""
import json
from pathlib import Path

import numpy as np
import pytest

from videoreasoner.data.importers import IMPORTERS
from videoreasoner.data.importers.common import raise_noted
from stages.ingest import normalise_entry
from videoreasoner.core.schema import REQUIRED_FIELDS, RecordError
from videoreasoner.answers.iou import evaluation_frame_times, tube_frames
from videoreasoner.data.record_checks import check_times
from videoreasoner.video.decoding import encode_mp4, read_frames

FPS, N_FRAMES = 4, 8  # every fixture video lasts 2.0 s


def make_video(path: Path, n: int = N_FRAMES) -> None:
    encode_mp4(np.zeros((n, 32, 32, 3), np.uint8), FPS, path)


def load(root: Path, **raw) -> tuple[list[dict], dict]:
    """Records of one source, raising its malformed entries as ingest does by default (on_error: fail)."""
    entry = normalise_entry(0, {"split": "train", **raw}, root)
    records = list(IMPORTERS[raw["format"]](entry))
    raise_noted(entry)
    return records, entry


def write(root: Path, rel: str, obj) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=1), encoding="utf-8")
    return rel


def check_error(exc_info, *parts: str) -> None:
    for part in parts:
        assert part in str(exc_info.value), (part, str(exc_info.value))


# ---------------------------------------------------------------- video_r1
def vr1_items() -> list[dict]:
    base = {"data_type": "video", "path": "./videos/a.mp4", "data_source": "NeXT-QA"}
    return [
        {**base, "problem_id": 7, "problem": "What colour is the ball?", "problem_type": "multiple choice",
         "options": ["A. red", "B. blue", "C. green"], "process": "<think>It looks blue.</think>",
         "solution": "<answer>B</answer>"},
        {**base, "problem_id": 8, "problem": "How many balls?", "problem_type": "numerical", "options": [],
         "solution": "<answer>3</answer>"},
        {"problem_id": 9, "problem": "x", "data_type": "image", "problem_type": "OCR",
         "path": "./Chart/x.png", "solution": "<answer>y</answer>"},
        {**base, "problem_id": 10, "problem": "Read the sign.", "problem_type": "OCR", "options": [],
         "solution": "<answer>STOP</answer>"},
        {**base, "problem_id": 11, "problem": "Describe it.", "problem_type": "free-form", "options": [],
         "solution": "<answer>A ball rolls.</answer>"},
        {**base, "problem_id": 12, "problem": "Speed?", "problem_type": "regression", "options": [],
         "solution": "<answer>2.5</answer>"},
    ]


def test_video_r1_happy_path(tmp_path):
    make_video(tmp_path / "raw/vr1/videos/a.mp4")
    path = write(tmp_path, "raw/vr1/data.json", vr1_items())
    recs, entry = load(tmp_path, name="vr1", format="video_r1", path=path)
    assert [r["problem_type"] for r in recs] == ["multiple_choice", "numerical", "ocr", "free_form", "regression"]
    mc = recs[0]
    assert set(REQUIRED_FIELDS) <= set(mc)
    assert mc["id"] == "vr1:0" and mc["source"] == "vr1" and mc["split"] == "train"
    assert mc["video"] == "raw/vr1/videos/a.mp4"
    assert mc["duration"] == pytest.approx(2.0) and mc["fps"] == pytest.approx(4.0)
    assert mc["options"] == ["red", "blue", "green"] and mc["answer"] == "B"
    assert mc["reasoning"] == "It looks blue." and mc["meta"] == {"problem_id": 7, "data_source": "NeXT-QA"}
    assert [r["answer"] for r in recs[1:]] == ["3", "STOP", "A ball rolls.", "2.5"]
    assert "options" not in recs[1] and "reasoning" not in recs[1]
    assert entry["counters"] == {"skipped_image": 1}


@pytest.mark.parametrize("change, field, problem", [
    ({"solution": "B"}, "solution", "no <answer> tag"),
    ({"options": ["A. red", "C. blue"]}, "options[1]", "is option B"),
    ({"problem_type": "ranking"}, "problem_type", "unknown problem type"),
    ({"solution": "<answer>D</answer>"}, "solution", "not one of the option letters"),
    ({"path": "./videos/missing.mp4"}, "path", "does not exist"),
    ({"problem": ""}, "problem", "non-empty"),
])
def test_video_r1_malformed_entry(tmp_path, change, field, problem):
    make_video(tmp_path / "raw/vr1/videos/a.mp4")
    items = vr1_items()
    items[1] = {**items[0], **change}
    path = write(tmp_path, "raw/vr1/data.json", items)
    with pytest.raises(RecordError) as exc_info:
        load(tmp_path, name="vr1", format="video_r1", path=path)
    check_error(exc_info, "raw/vr1/data.json[1]", f"field '{field}'", problem)


def test_video_r1_bad_json_names_file_and_line(tmp_path):
    path = write(tmp_path, "vr1.json", '[\n{"problem": "x",\n oops}\n]')
    with pytest.raises(ValueError, match=r"vr1\.json:3: not valid JSON"):
        load(tmp_path, name="vr1", format="video_r1", path=path)


# ---------------------------------------------------------------- sharegpt
def test_sharegpt_both_layouts(tmp_path):
    make_video(tmp_path / "sg/clips/a.mp4")
    items = [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "<video>What happens?"},
                      {"role": "assistant", "content": "<think>A ball moves.</think><answer>It rolls.</answer>"}],
         "videos": ["clips/a.mp4"]},
        {"conversations": [{"from": "human", "value": "What is shown? <video>"},
                           {"from": "gpt", "value": "A ball."}],
         "videos": ["clips/a.mp4"]},
    ]
    path = write(tmp_path, "sg/data.json", items)
    recs, _ = load(tmp_path, name="sg", format="sharegpt", path=path)
    assert [r["question"] for r in recs] == ["What happens?", "What is shown?"]
    assert [r["answer"] for r in recs] == ["It rolls.", "A ball."]
    assert recs[0]["reasoning"] == "A ball moves." and "reasoning" not in recs[1]
    assert {r["problem_type"] for r in recs} == {"free_form"} and recs[1]["id"] == "sg:1"
    assert recs[0]["video"] == "sg/clips/a.mp4"


def test_sharegpt_multiple_choice_options_from_question(tmp_path):
    make_video(tmp_path / "sg/a.mp4")
    items = [{"messages": [{"role": "user", "content": "<video>Which colour?\nA. red\nB. blue"},
                           {"role": "assistant", "content": "<answer>B</answer>"}], "videos": ["a.mp4"]}]
    path = write(tmp_path, "sg/data.json", items)
    recs, _ = load(tmp_path, name="sg", format="sharegpt", path=path, problem_type="multiple_choice")
    assert recs[0]["question"] == "Which colour?"
    assert recs[0]["options"] == ["red", "blue"] and recs[0]["answer"] == "B"


@pytest.mark.parametrize("change, field", [
    ({"videos": ["a.mp4", "a.mp4"]}, "videos"),
    ({"messages": [{"role": "user", "content": "<video>q"}, {"role": "assistant", "content": "a"},
                   {"role": "user", "content": "q2"}, {"role": "assistant", "content": "b"}]}, "messages"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}, "messages.user"),
    ({"messages": [{"role": "robot", "content": "q"}]}, "messages[0].role"),
])
def test_sharegpt_malformed_entry(tmp_path, change, field):
    make_video(tmp_path / "sg/a.mp4")
    good = {"messages": [{"role": "user", "content": "<video>q"}, {"role": "assistant", "content": "a"}],
            "videos": ["a.mp4"]}
    path = write(tmp_path, "sg/data.json", [good, {**good, **change}])
    with pytest.raises(RecordError) as exc_info:
        load(tmp_path, name="sg", format="sharegpt", path=path)
    check_error(exc_info, "sg/data.json[1]", f"field '{field}'")


# ---------------------------------------------------------------- charades_sta
def test_charades_sta_lines(tmp_path):
    make_video(tmp_path / "ch/videos/3MSZA.mp4")
    lines = "3MSZA 0.4 1.2##person turn a light on.\n\n3MSZA 1.0 9.5##person sits.\n"
    path = write(tmp_path, "ch/sta_train.txt", lines)
    recs, entry = load(tmp_path, name="ch", format="charades_sta", path=path, video_root="ch/videos")
    assert [r["id"] for r in recs] == ["ch:3MSZA@1", "ch:3MSZA@3"]
    assert recs[0]["problem_type"] == "temporal_grounding" and recs[0]["answer"] == [0.4, 1.2]
    assert recs[0]["question"] == "When does the following happen in the video: 'person turn a light on'?"
    assert recs[0]["video"] == "ch/videos/3MSZA.mp4"
    assert recs[1]["answer"] == [1.0, 2.0] and entry["counters"] == {"clipped_end": 1}


@pytest.mark.parametrize("line, field", [
    ("3MSZA 1.0##no end", "vid start end"),
    ("3MSZA one 2.0##bad start", "start"),
    ("3MSZA 1.0 2.0 no separator", "sentence"),
    ("3MSZA 1.5 1.0##reversed", "end"),
    ("NOPE 0.0 1.0##missing video", "vid"),
    ("3MSZA 2.5 3.0##after the end", "start"),
])
def test_charades_sta_malformed_line(tmp_path, line, field):
    make_video(tmp_path / "ch/3MSZA.mp4")
    path = write(tmp_path, "ch/sta.txt", f"3MSZA 0.0 1.0##fine\n{line}\n")
    with pytest.raises(RecordError) as exc_info:
        load(tmp_path, name="ch", format="charades_sta", path=path)
    check_error(exc_info, "ch/sta.txt:2", f"field '{field}'")


# ---------------------------------------------------------------- hcstvg
def test_hcstvg_dict_xywh_one_based(tmp_path):
    make_video(tmp_path / "hc/v1.mp4")
    anno = {"v1.mp4": {"English": "The man in black walks.", "st_frame": 3, "ed_frame": 5, "img_size": [32, 64],
                       "bbox": [[16, 8, 16, 16], [20, 8, 16, 16], [24, 8, 80, 16]]}}
    path = write(tmp_path, "hc/anno.json", anno)
    (rec,), _ = load(tmp_path, name="hc", format="hcstvg", path=path)
    assert rec["id"] == "hc:v1" and rec["problem_type"] == "spatio_temporal_grounding"
    assert rec["question"] == "When and where in the video does the following happen: 'The man in black walks'?"
    # frames 2, 3, 4 (0-based) at 4 fps; boxes in a 64-wide, 32-high annotation frame, clipped
    assert rec["answer"]["span"] == [0.5, 1.25]
    assert rec["answer"]["boxes"] == {"0.5": [0.25, 0.25, 0.5, 0.75], "0.75": [0.3125, 0.25, 0.5625, 0.75],
                                      "1.0": [0.375, 0.25, 1.0, 0.75]}


def test_hcstvg_list_xyxy_zero_based(tmp_path):
    make_video(tmp_path / "hc/v2.mp4")
    anno = [{"video": "v2", "caption": "a dog jumps", "st_frame": 0, "bbox": [[0, 0, 16, 16], [0, 0, 32, 32]]}]
    path = write(tmp_path, "hc/anno.json", anno)
    (rec,), _ = load(tmp_path, name="hc", format="hcstvg", path=path, box_format="xyxy", frame_base=0)
    assert rec["id"] == "hc:0" and rec["video"] == "hc/v2.mp4"
    assert rec["answer"] == {"span": [0.0, 0.5], "boxes": {"0.0": [0.0, 0.0, 0.5, 0.5], "0.25": [0.0, 0.0, 1.0, 1.0]}}


def test_hcstvg_span_is_half_open_and_names_exactly_the_annotated_frames(tmp_path):
    """At 30 fps the millisecond-rounded span [0.067, 0.167) must still hold frames 2..4 and not 5."""
    encode_mp4(np.zeros((12, 32, 32, 3), np.uint8), 30, tmp_path / "hc/v30.mp4")
    anno = {"v30.mp4": {"English": "x", "st_frame": 3, "bbox": [[1, 1, 4, 4]] * 3}}
    (rec,), _ = load(tmp_path, name="hc", format="hcstvg", path=write(tmp_path, "hc/anno.json", anno))
    assert rec["answer"]["span"] == [0.067, 0.167]
    _, times = read_frames(tmp_path / "hc/v30.mp4")
    for frame_times in (times, evaluation_frame_times(rec["duration"], rec["fps"])):
        assert tube_frames(rec["answer"]["span"], frame_times) == {2, 3, 4}
    assert check_times(rec) is None


@pytest.mark.parametrize("change, field", [
    ({"bbox": [[1, 1, 4, 4], [1, 1, 4]]}, "bbox[1]"),
    ({"ed_frame": 9}, "ed_frame"),
    ({"st_frame": 8, "ed_frame": 9}, "st_frame"),
    ({"English": ""}, "caption"),
    ({"bbox": [[40, 1, 4, 4]]}, "bbox[0]"),
])
def test_hcstvg_malformed_entry(tmp_path, change, field):
    make_video(tmp_path / "hc/v1.mp4")
    make_video(tmp_path / "hc/v1b.mp4")
    good = {"English": "x", "st_frame": 1, "ed_frame": 2, "bbox": [[1, 1, 4, 4], [1, 1, 4, 4]]}
    path = write(tmp_path, "hc/anno.json", {"v1.mp4": good, "v1b.mp4": {**good, **change}})
    with pytest.raises(RecordError) as exc_info:
        load(tmp_path, name="hc", format="hcstvg", path=path)
    check_error(exc_info, "hc/anno.json['v1b.mp4']", f"field '{field}'")


# ---------------------------------------------------------------- synthetic
def synthetic_row(i: int, split: str = "train") -> dict:
    return {"id": f"s{i:03d}", "video": f"videos/s{i:03d}.mp4", "duration": 2.0, "problem_type": "numerical",
            "question": "How many balls?", "answer": "2", "split": split, "source": "synthetic-world/v1",
            "reasoning": "I count two.", "meta": {"task": "count"}}


def test_synthetic_rows_keep_split_and_get_root_relative_paths(tmp_path):
    rows = [synthetic_row(0), synthetic_row(1, "test")]
    path = write(tmp_path, "data/raw/synthetic/annotations.jsonl", "\n".join(json.dumps(r) for r in rows))
    recs, _ = load(tmp_path, name="synthetic", format="synthetic", path=path, split=None)
    assert [r["id"] for r in recs] == ["synthetic:s000", "synthetic:s001"]
    assert recs[0]["video"] == "data/raw/synthetic/videos/s000.mp4"
    assert [r["split"] for r in recs] == ["train", "test"] and recs[0]["source"] == "synthetic-world/v1"
    assert recs[0]["meta"] == {"task": "count"} and recs[0]["reasoning"] == "I count two."
    recs, _ = load(tmp_path, name="synthetic", format="synthetic", path=path, split="val", version="v2")
    assert {r["split"] for r in recs} == {"val"} and {r["source"] for r in recs} == {"synthetic@v2"}


@pytest.mark.parametrize("line, field", [
    (json.dumps({k: v for k, v in synthetic_row(9).items() if k != "duration"}), "duration"),
    (json.dumps({**synthetic_row(9), "split": "dev"}), "split"),
    (json.dumps({**synthetic_row(9), "colour": "red"}), "colour"),
    ('{"id": "s9", oops', None),
])
def test_synthetic_malformed_row(tmp_path, line, field):
    path = write(tmp_path, "syn/annotations.jsonl", json.dumps(synthetic_row(0)) + "\n" + line + "\n")
    with pytest.raises(ValueError) as exc_info:
        load(tmp_path, name="synthetic", format="synthetic", path=path, split=None)
    check_error(exc_info, "syn/annotations.jsonl:2", f"field '{field}'" if field else "not valid JSON")


# ---------------------------------------------------------------- video paths stay inside video_root
def _escaping_source(root: Path, fmt: str, video: str) -> dict:
    """A one-entry source of format `fmt` (annotations in root/ds, video_root root/ds) naming `video`."""
    mc = {"role": "user", "content": "<video>What happens?"}
    files = {
        "video_r1": ("ds/data.json", [{**vr1_items()[1], "path": video}]),
        "sharegpt": ("ds/data.json", [{"messages": [mc, {"role": "assistant", "content": "x"}], "videos": [video]}]),
        "charades_sta": ("ds/sta.txt", f"{video.removesuffix('.mp4')} 0.0 1.0##someone waves.\n"),
        "hcstvg": ("ds/anno.json", {video: {"English": "x", "st_frame": 1, "bbox": [[1, 1, 4, 4]]}}),
        "synthetic": ("ds/annotations.jsonl", json.dumps({**synthetic_row(0), "video": video}) + "\n"),
        "records": ("ds/records.jsonl", json.dumps({**synthetic_row(0), "video": video}) + "\n"),
        "mvbench": ("ds/task.json", [{"video": video, "question": "q", "candidates": ["a", "b"], "answer": "a"}]),
        "videomme": ("ds/rows.json", [{"videoID": video.removesuffix(".mp4"), "question_id": "1-1", "question": "q",
                                       "options": ["A. a", "B. b"], "answer": "A"}]),
        "vstar": ("ds/vstar.json", [{"vid": video.removesuffix(".mp4")}]),
    }
    path, content = files[fmt]
    return {"name": "ds", "format": fmt, "path": write(root, path, content)}


@pytest.mark.parametrize("fmt", sorted(IMPORTERS))
@pytest.mark.parametrize("video", ["../../secret.mp4", "clips/../../secret.mp4", "ABSOLUTE"])
def test_every_importer_refuses_a_video_outside_video_root(tmp_path, fmt, video):
    """A path climbing out of video_root (relative or absolute) names the entry and field, and the file
    outside (which exists, and decodes) is never opened."""
    make_video(tmp_path / "secret.mp4")
    make_video(tmp_path / "ws/secret.mp4")
    video = str(tmp_path / "secret.mp4") if video == "ABSOLUTE" else video
    raw = _escaping_source(tmp_path / "ws", fmt, video)
    with pytest.raises(RecordError, match="leaves the source's video_root") as exc_info:
        load(tmp_path / "ws", **raw)
    check_error(exc_info, raw["path"], "field '")


def test_an_absolute_video_path_inside_video_root_is_accepted_and_made_relative(tmp_path):
    make_video(tmp_path / "raw/vr1/videos/a.mp4")
    items = [{**vr1_items()[1], "path": str(tmp_path / "raw/vr1/videos/a.mp4")}]
    path = write(tmp_path, "raw/vr1/data.json", items)
    (rec,), _ = load(tmp_path, name="vr1", format="video_r1", path=path)
    assert rec["video"] == "raw/vr1/videos/a.mp4"


def test_a_video_root_outside_the_workspace_must_be_absolute(tmp_path):
    path = write(tmp_path, "ws/ds/data.json", vr1_items())
    with pytest.raises(RecordError, match="field 'video_root'.*give an absolute path"):
        load(tmp_path / "ws", name="vr1", format="video_r1", path=path.removeprefix("ws/"),
             video_root="../elsewhere")


# ---------------------------------------------------------------- numbers and collected errors
def vr1_numeric(tmp_path, answers: list[str]) -> str:
    make_video(tmp_path / "raw/vr1/videos/a.mp4")
    items = [{"problem_id": i, "problem": "How many?", "problem_type": "numerical", "options": [],
              "path": "./videos/a.mp4", "solution": f"<answer>{a}</answer>"} for i, a in enumerate(answers)]
    return write(tmp_path, "raw/vr1/data.json", items)


def test_numeric_ground_truth_is_read_as_the_verifiers_read_it(tmp_path):
    from videoreasoner.answers.verifiers import verify_numerical
    recs, _ = load(tmp_path, name="vr1", format="video_r1", path=vr1_numeric(tmp_path, ["1,000", "10,", "2.5"]))
    assert [r["answer"] for r in recs] == ["1,000", "10,", "2.5"]  # kept as written, scored by parse_number
    assert verify_numerical("<answer>1000</answer>", recs[0]["answer"]).score == 1.0
    assert verify_numerical("<answer>10</answer>", recs[1]["answer"]).score == 1.0


@pytest.mark.parametrize("answer", ["3 or 4", "many", "inf"])
def test_a_ground_truth_that_is_not_one_number_is_refused(tmp_path, answer):
    with pytest.raises(RecordError) as exc_info:
        load(tmp_path, name="vr1", format="video_r1", path=vr1_numeric(tmp_path, ["3", answer]))
    check_error(exc_info, "raw/vr1/data.json[1]", "field 'solution'", "not a single finite number")


def test_every_malformed_entry_is_noted_and_the_good_ones_still_imported(tmp_path):
    path = vr1_numeric(tmp_path, ["3", "x", "4", "y or z"])
    items = json.loads((tmp_path / path).read_text()) + ["not an object", {"problem": "no solution"}]
    write(tmp_path, path, items)
    entry = normalise_entry(0, {"name": "vr1", "format": "video_r1", "path": path, "split": "train"}, tmp_path)
    recs = list(IMPORTERS["video_r1"](entry))
    assert [r["answer"] for r in recs] == ["3", "4"]
    assert entry["n_errors"] == 4
    assert [(e.where, e.field) for e in entry["errors"]] == [
        ("raw/vr1/data.json[1]", "solution"), ("raw/vr1/data.json[3]", "solution"),
        ("raw/vr1/data.json[4]", "(entry)"), ("raw/vr1/data.json[5]", "problem_type")]
    with pytest.raises(RecordError) as exc_info:
        raise_noted(entry)
    check_error(exc_info, "raw/vr1/data.json: 4 malformed entries (all listed)", "data.json[4]: field '(entry)'")


def test_at_most_max_errors_are_kept_but_all_are_counted(tmp_path):
    lines = "".join(f"V{i} x 1.0##opens a door\n" for i in range(5))
    path = write(tmp_path, "sta.txt", lines)
    entry = normalise_entry(0, {"name": "c", "format": "charades_sta", "path": path, "split": "test",
                                "max_errors": 2}, tmp_path)
    assert list(IMPORTERS["charades_sta"](entry)) == []
    assert entry["n_errors"] == 5 and [e.where for e in entry["errors"]] == ["sta.txt:1", "sta.txt:2"]
    with pytest.raises(RecordError, match=r"sta\.txt: 5 malformed entries \(2 listed\)") as exc_info:
        raise_noted(entry)
    assert str(exc_info.value).count("field 'start'") == 2
