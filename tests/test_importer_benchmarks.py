"""Standard benchmark files (MVBench, Video-MME, V-STaR): each hand-made fixture through ingest and the
validate gate end to end, plus the cases each format's reader has to get right."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages import ingest, validate
from stages.validate import ValidateConfig
from tests.helpers_clips import fixture_workspace
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.core.paths import INTERIM_RECORDS
from videoreasoner.core.schema import RecordError

FAST = ValidateConfig(workers=1, data_docs=False, required_splits=())  # benchmarks are test sets only
SOURCES = {
    "mvbench": {"name": "mvbench_aa", "format": "mvbench", "path": "mvbench/action_antonym.json",
                "video_root": "mvbench/ssv2_video", "split": "test"},
    "videomme": {"name": "videomme", "format": "videomme", "path": "videomme/test.json",
                 "video_root": "videomme/data", "split": "test"},
    "vstar": {"name": "vstar", "format": "vstar", "path": "vstar/V_STaR_test.json",
              "video_root": "vstar/videos", "split": "test"},
}


def ingest_and_validate(root, *sources: dict) -> tuple[dict[str, dict], dict]:
    summary = ingest.run({"sources": list(sources)}, root)
    result = validate.run(FAST, root)
    assert result["success"], result["failed"]
    assert result["outputs"]["data/validated/test.jsonl"] == summary["n_records"]
    return {r["id"]: r for r in read_jsonl(root / INTERIM_RECORDS)}, summary


def test_mvbench_fixture_end_to_end(tmp_path):
    fixture_workspace("mvbench", tmp_path)
    records, summary = ingest_and_validate(tmp_path, SOURCES["mvbench"])
    assert list(records) == ["mvbench_aa:0", "mvbench_aa:1"]
    first, second = records.values()
    assert first["options"][0] == "Pushing something from left to right" and first["answer"] == "A"
    assert second["answer"] == "B" and second["meta"] == {"task": "action_antonym"}
    assert first["video"] == "mvbench/ssv2_video/1001.mp4" and first["fps"] == 12.0
    assert summary["sources"]["mvbench_aa"]["counters"] == {"skipped_clip_bound": 1}


def test_mvbench_answer_must_be_exactly_one_candidate_and_frame_folders_are_skipped(tmp_path):
    fixture_workspace("mvbench", tmp_path)
    items = json.loads((tmp_path / SOURCES["mvbench"]["path"]).read_text())
    (tmp_path / "mvbench/ssv2_video/frames_7").mkdir()
    items.append({"video": "frames_7", "question": "q", "candidates": ["a", "b"], "answer": "a"})
    (tmp_path / SOURCES["mvbench"]["path"]).write_text(json.dumps(items))
    _, summary = ingest.import_sources({"sources": [{**SOURCES["mvbench"], "task": "antonym"}]}, tmp_path)
    assert summary["sources"]["mvbench_aa"]["counters"] == {"skipped_clip_bound": 1, "skipped_frame_folder": 1}
    items[1]["answer"] = "sideways"
    (tmp_path / SOURCES["mvbench"]["path"]).write_text(json.dumps(items))
    with pytest.raises(RecordError, match=r"action_antonym\.json\[1\]: field 'answer': 'sideways' equals no candidate"):
        ingest.import_sources({"sources": [SOURCES["mvbench"]]}, tmp_path)


@pytest.mark.parametrize("layout", ["json", "parquet"])
def test_videomme_fixture_end_to_end(tmp_path, layout):
    fixture_workspace("videomme", tmp_path)
    source = SOURCES["videomme"]
    if layout == "parquet":  # the released file is parquet; the fixture keeps its rows as text
        rows = json.loads((tmp_path / source["path"]).read_text())
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "videomme/test.parquet")
        source = {**source, "path": "videomme/test.parquet"}
    records, _ = ingest_and_validate(tmp_path, source)
    assert list(records) == ["videomme:001-1", "videomme:001-2", "videomme:002-1"]
    q = records["videomme:001-2"]
    assert q["options"] == ["Blue.", "Red.", "Green.", "White."] and q["answer"] == "B"
    assert q["meta"] == {"task_type": "Attribute Perception", "domain": "Knowledge", "video_id": "001",
                         "sub_category": "Humanity & History", "videoID": "fFjv93ACGo8", "duration_class": "short"}
    assert records["videomme:002-1"]["video"] == "videomme/data/Xq2lLm0pQzY.MP4"  # .MP4 tried after .mp4


@pytest.mark.parametrize("change, field, problem", [
    ({"options": ["One.", "Two.", "Three.", "Four."]}, "options[0]", "no letter prefix A"),
    ({"options": ["A. A. One.", "B. Two.", "C. Three.", "D. Four."]}, "options[0]", "repeats its letter prefix"),
    ({"answer": "E"}, "answer", "not one of the option letters"),
    ({"question_id": None}, "question_id", "missing"),
])
def test_videomme_malformed_row(tmp_path, change, field, problem):
    fixture_workspace("videomme", tmp_path)
    rows = json.loads((tmp_path / SOURCES["videomme"]["path"]).read_text())
    rows[2].update(change)
    (tmp_path / SOURCES["videomme"]["path"]).write_text(json.dumps(rows))
    with pytest.raises(RecordError) as exc_info:
        ingest.import_sources({"sources": [SOURCES["videomme"]]}, tmp_path)
    assert "videomme/test.json[2]" in str(exc_info.value) and f"field '{field}'" in str(exc_info.value)
    assert problem in str(exc_info.value)


def test_vstar_fixture_end_to_end(tmp_path):
    fixture_workspace("vstar", tmp_path)
    records, summary = ingest_and_validate(tmp_path, SOURCES["vstar"])
    assert list(records) == [f"vstar:{i}/{part}" for i in (0, 1) for part in ("what", "when", "where")]
    what, when, where = (records[f"vstar:0/{p}"] for p in ("what", "when", "where"))
    assert what["problem_type"] == "free_form" and what["answer"] == "A red square."
    assert what["reasoning"] == "A red square enters at 1 s and slides right until 3 s."
    assert when["answer"] == [1.0, 3.0] and when["video"] == "vstar/videos/vidstg/2401075277.mp4"
    # the box at the end (3 s) lies inside the half-open tube: the end moves one frame (0.25 s) past it
    assert where["answer"]["span"] == [1.0, 3.25]
    assert where["answer"]["boxes"] == {"1.0": [0.1875, 0.3333, 0.375, 0.5833], "2.0": [0.375, 0.3333, 0.5625, 0.5833],
                                        "3.0": [0.5625, 0.3333, 0.75, 0.5833]}
    other = records["vstar:1/where"]["answer"]  # the README's keyed layout; a box past the frame is clipped
    assert other == {"span": [0.5, 1.5], "boxes": {"0.5": [0.0, 0.2083, 0.25, 0.625], "1.0": [0.125, 0.2083, 1.0, 0.625]}}
    assert records["vstar:1/what"]["reasoning"] == "A square." and where["meta"] == {"domain": "Daily Life",
                                                                                      "object": "red square"}
    assert summary["sources"]["vstar"]["counters"] == {"tube_span_widened": 1}


@pytest.mark.parametrize("change, field, problem", [
    ({"frame_count": 40}, "frame_count", "40 frames at 4 fps last 10 s but the file lasts 4 s"),
    ({"timestamps": [3.0, 1.0]}, "timestamps", "expected 0 <= start < end"),
    ({"bboxes": [{"timestamp": 1, "xmin": 30, "ymin": 5, "xmax": 10, "ymax": 20}]}, "bboxes[0]", "empty box"),
    ({"bboxes": [{"timestamp": 1, "xmin": 3}]}, "bboxes[0]", "expected the corners"),
    ({"vid": "missing"}, "vid", "does not exist"),
])
def test_vstar_malformed_item_gives_no_records(tmp_path, change, field, problem):
    fixture_workspace("vstar", tmp_path)
    items = json.loads((tmp_path / SOURCES["vstar"]["path"]).read_text())
    items[0].update(change)
    (tmp_path / SOURCES["vstar"]["path"]).write_text(json.dumps(items))
    with pytest.raises(RecordError) as exc_info:
        ingest.import_sources({"sources": [SOURCES["vstar"]]}, tmp_path)
    assert "V_STaR_test.json[0]" in str(exc_info.value) and f"field '{field}'" in str(exc_info.value)
    assert problem in str(exc_info.value)
    records, summary = ingest.import_sources({"sources": [{**SOURCES["vstar"], "on_error": "skip"}]}, tmp_path)
    assert [r["id"] for r in records] == ["vstar:1/what", "vstar:1/when", "vstar:1/where"]
    assert summary["sources"]["vstar"]["skipped"]["n"] == 1


def test_vstar_video_named_twice_under_the_root_is_an_error(tmp_path):
    fixture_workspace("vstar", tmp_path)
    copy = tmp_path / "vstar/videos/other/2401075277.mp4"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "vstar/videos/vidstg/2401075277.mp4").read_bytes())
    with pytest.raises(RecordError, match=r"field 'vid': 2401075277\.mp4 is in 2 folders"):
        ingest.import_sources({"sources": [SOURCES["vstar"]]}, tmp_path)
