"""The `records` importer (the project's own schema, for your own videos): the hand-made fixture through
ingest and the validate gate end to end, and every malformed row named by line, record and field."""
import json

import pytest

from stages import ingest, validate
from stages.validate import ValidateConfig
from tests.helpers_clips import fixture_workspace
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.core.paths import INTERIM_RECORDS, split_file
from videoreasoner.core.schema import RecordError

SOURCE = {"name": "records", "format": "records", "path": "records/records.jsonl"}
FAST = ValidateConfig(workers=1, data_docs=False)


@pytest.fixture
def workspace(tmp_path):
    fixture_workspace("records", tmp_path)
    return tmp_path


def rows(root) -> list[dict]:
    return [json.loads(line) for line in (root / SOURCE["path"]).read_text().splitlines()]


def rewrite(root, changed: list[dict]) -> None:
    (root / SOURCE["path"]).write_text("".join(json.dumps(r) + "\n" for r in changed))


def test_fixture_passes_ingest_and_the_validate_gate(workspace):
    summary = ingest.run({"sources": [SOURCE]}, workspace)
    records = {r["id"]: r for r in read_jsonl(workspace / INTERIM_RECORDS)}
    assert list(records) == [f"records:q{i}" for i in range(1, 8)]  # "records:q7" is not prefixed twice
    q1, q2, q3, q4 = (records[f"records:q{i}"] for i in range(1, 5))
    assert q1["options"] == ["a rabbit", "a dog", "a cat"] and q1["answer"] == "A"
    assert q3["options"] == ["red", "green"] and q3["answer"] == "A" and q3["reasoning"] == "The square is red."
    assert summary["sources"]["records"]["counters"] == {"stripped_option_prefixes": 2}
    assert q2["answer"] == "1" and q1["source"] == "records"
    assert (q1["fps"], q1["width"], q1["height"], q1["duration"]) == (25.0, 176, 144, pytest.approx(0.4))
    assert q4["fps"] == pytest.approx(30000 / 1001) and q4["duration"] == pytest.approx(12 * 1001 / 30000)
    assert q1["video"] == "records/videos/rabbit.mp4" and records["records:q6"]["meta"] == {"annotator": "me"}
    assert summary["by_split"] == {"test": 2, "train": 3, "val": 2}

    result = validate.run(FAST, workspace)
    assert result["success"], result["failed"]
    assert {str(split_file(s)): n for s, n in (("train", 3), ("val", 2), ("test", 2))} == result["outputs"]


def test_an_entry_split_overrides_the_rows(workspace):
    records, _ = ingest.import_sources({"sources": [{**SOURCE, "split": "test"}]}, workspace)
    assert {r["split"] for r in records} == {"test"}


@pytest.mark.parametrize("change, field, problem", [
    ({"options": ["B. a rabbit", "C. a dog"]}, "options[0]", "carries letter B but is option A"),
    ({"options": ["A. A. a rabbit", "B. B. a dog"]}, "options[0]", "repeats its letter prefix A"),
    ({"options": ["A. a rabbit", "a dog"]}, "options[1]", "has no letter prefix B"),
    ({"duration": 0.5}, "duration", "0.5 s but the file's 10 frames at 25 fps last 0.4 s"),
    ({"fps": 30}, "fps", "30 but the file runs at 25 fps"),
    ({"width": 160}, "width", "160 px but the file is 176x144"),
    ({"answer": "D"}, "answer", "not one of the option letters"),
    ({"split": None}, "split", "expected one of train, val, test"),
    ({"video": "videos/missing.mp4"}, "video", "does not exist"),
    ({"video": "../outside.mp4"}, "video", "leaves the source's video_root"),
    ({"id": ""}, "id", "missing"),
    ({"colour": "red"}, "colour", "not a schema field"),
])
def test_a_malformed_row_names_line_record_and_field(workspace, change, field, problem):
    changed = rows(workspace)
    changed[0] = {k: v for k, v in {**changed[0], **change}.items() if v is not None}
    rewrite(workspace, changed)
    with pytest.raises(RecordError) as exc_info:
        ingest.import_sources({"sources": [SOURCE]}, workspace)
    where = "records/records.jsonl:1" + ("" if field == "id" else " (id q1)")
    assert f"{where}: field '{field}'" in str(exc_info.value) and problem in str(exc_info.value), str(exc_info.value)


def test_a_duration_within_one_frame_is_replaced_by_the_files(workspace):
    changed = rows(workspace)
    changed[0]["duration"] = 0.43  # 0.4 s file at 25 fps: 0.03 s is within one frame (0.04 s)
    rewrite(workspace, changed)
    records, _ = ingest.import_sources({"sources": [SOURCE]}, workspace)
    assert records[0]["duration"] == pytest.approx(0.4)


def test_a_grounding_answer_past_the_video_is_stopped_by_the_gate(workspace):
    """Grounding answers are taken as written at ingest; the validate gate checks them against the file."""
    changed = rows(workspace)
    changed[3]["answer"] = [0.1, 5.0]
    rewrite(workspace, changed)
    ingest.run({"sources": [SOURCE]}, workspace)
    with pytest.raises(validate.ValidationFailed, match="records:q4"):
        validate.run(FAST, workspace)
