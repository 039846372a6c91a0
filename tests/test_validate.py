"""The validate gate end to end: good records pass and are split; every kind of bad input fails the stage
with a message naming the expectation, the record and the field, and nothing reaches data/validated/."""
import json
import os

import av
import numpy as np
import pytest

from stages import validate
from videoreasoner.core.atomic import write_jsonl
from videoreasoner.data.expectations import CHECK_COLUMNS, build_expectations
from videoreasoner.core.paths import INTERIM_RECORDS, VALIDATED_DIR, VALIDATION_RESULT, split_file
from stages.validate import ValidateConfig, ValidationFailed, run
from videoreasoner.video.decoding import encode_mp4

FAST = ValidateConfig(workers=1, data_docs=False)  # Data Docs are checked once, in the success/failure tests
FPS, N_FRAMES, SIZE = 4, 8, 32  # 2.0 s clips
VIDEOS = ("train_a", "train_b", "val", "test")


def _frames() -> np.ndarray:
    frames = np.full((N_FRAMES, SIZE, SIZE, 3), 40, np.uint8)
    for k in range(N_FRAMES):
        frames[k, 4 + k:12 + k, 4:12] = (200, 30, 30)
    return frames


def _faststart_copy(src, dst) -> None:
    """Remux with the index (moov) first, so that a truncated copy still opens and fails only on decode."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for name in VIDEOS:
        encode_mp4(_frames(), FPS, folder / f"{name}.mp4")
    data = (folder / "train_a.mp4").read_bytes()
    (folder / "corrupt.mp4").write_bytes(bytes(range(256)) * 8)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])  # index lost: cannot open
    _faststart_copy(folder / "train_a.mp4", folder / "faststart.mp4")
    full = (folder / "faststart.mp4").read_bytes()
    (folder / "truncated_faststart.mp4").write_bytes(full[: int(len(full) * 0.7)])  # opens, decode fails
    return folder


def good_records() -> list[dict]:
    common = {"duration": N_FRAMES / FPS, "fps": float(FPS), "width": SIZE, "height": SIZE,
              "source": "synthetic-v1", "question": "What happens?"}
    box = [0.1, 0.2, 0.4, 0.6]
    rows = [
        ("mc", "train_a", "multiple_choice", "B", ["red", "green", "blue", "grey"]),
        ("num", "train_a", "numerical", "3", None),
        ("reg", "train_b", "regression", "0.75", None),
        ("ff", "train_b", "free_form", "a red square moves down", None),
        ("ocr", "val", "ocr", "EXIT", None),
        ("tg", "val", "temporal_grounding", [0.5, 1.5], None),
        ("sg", "test", "spatial_grounding", {"time": 1.0, "box": box}, None),
        ("stg", "test", "spatio_temporal_grounding", {"span": [0.5, 1.5], "boxes": {"0.5": box, "1.25": box}}, None),
    ]
    split_of = {"train_a": "train", "train_b": "train", "val": "val", "test": "test"}
    records = []
    for rid, video, problem_type, answer, options in rows:
        rec = {"id": rid, "video": f"videos/{video}.mp4", "problem_type": problem_type, "answer": answer,
               "split": split_of[video], **common}
        if options:
            rec["options"] = options
        records.append(rec)
    return records


def workspace(tmp_path, videos, records, raw_lines=()):
    (tmp_path / "videos").symlink_to(videos)
    write_jsonl(tmp_path / INTERIM_RECORDS, records)
    if raw_lines:
        with open(tmp_path / INTERIM_RECORDS, "a", encoding="utf-8") as fh:
            fh.writelines(raw_lines)
    return tmp_path


def by_id(records, rid):
    return next(r for r in records if r["id"] == rid)


def edit(rid, **changes):
    """A mutation setting fields of record `rid` (None deletes the field)."""
    def apply(records):
        rec = by_id(records, rid)
        for key, value in changes.items():
            if value is None:
                rec.pop(key, None)
            else:
                rec[key] = value
    return apply


def duplicate_id(records):
    by_id(records, "num")["id"] = "mc"


def leak_video(records):
    by_id(records, "ocr")["video"] = "videos/train_a.mp4"  # a train video in the val split


# (kind, mutation, offending id, field, failing expectation column)
BAD_INPUTS = [
    ("duplicate id", duplicate_id, "mc", "id", "id"),
    ("unknown problem_type", edit("num", problem_type="counting"), "num", "problem_type", "problem_type"),
    ("invalid split", edit("num", split="dev"), "num", "split", "split"),
    ("missing required field", edit("ff", question=None), "ff", "question", "question"),
    ("missing answer", edit("ocr", answer=None), "ocr", "answer", "answer"),
    ("empty question", edit("ff", question="   "), "ff", "question", "check_question"),
    ("unknown field", edit("num", colour="red"), "num", "colour", "check_fields"),
    ("duration not a number", edit("num", duration="2.0"), "num", "duration", "check_fields"),
    ("mc without options", edit("mc", options=None), "mc", "options", "check_options"),
    ("duplicate option text", edit("mc", options=["red", "red", "blue"]), "mc", "options", "check_options"),
    ("options on a numerical question", edit("num", options=["1", "2"]), "num", "options", "check_options"),
    ("mc letter beyond the options", edit("mc", answer="E"), "mc", "answer", "check_answer"),
    ("mc answer is option text", edit("mc", answer="green"), "mc", "answer", "check_answer"),
    ("numerical answer not a number", edit("num", answer="three"), "num", "answer", "check_answer"),
    ("regression answer not a string", edit("reg", answer=0.75), "reg", "answer", "check_answer"),
    ("empty free-form answer", edit("ff", answer=""), "ff", "answer", "check_answer"),
    ("span is not two numbers", edit("tg", answer=[0.5]), "tg", "answer", "check_answer"),
    ("reversed span", edit("tg", answer=[1.5, 0.5]), "tg", "answer", "check_times"),
    ("span beyond the duration", edit("tg", answer=[0.5, 2.5]), "tg", "answer", "check_times"),
    ("negative span start", edit("tg", answer=[-0.5, 1.0]), "tg", "answer", "check_times"),
    ("time beyond the duration", edit("sg", answer={"time": 3.0, "box": [0, 0, 1, 1]}), "sg", "answer.time",
     "check_times"),
    ("box time outside the span", edit("stg", answer={"span": [0.5, 1.0], "boxes": {"1.5": [0, 0, 1, 1]}}),
     "stg", "answer.boxes[1.5]", "check_times"),
    ("box key not a time", edit("stg", answer={"span": [0.5, 1.0], "boxes": {"t1": [0, 0, 1, 1]}}), "stg",
     "answer.boxes", "check_answer"),
    ("box not normalised", edit("sg", answer={"time": 1.0, "box": [10, 20, 40, 60]}), "sg", "answer.box",
     "check_boxes"),
    ("box x1 >= x2", edit("sg", answer={"time": 1.0, "box": [0.6, 0.2, 0.4, 0.6]}), "sg", "answer.box",
     "check_boxes"),
    ("tube box y1 >= y2", edit("stg", answer={"span": [0.5, 1.5], "boxes": {"0.5": [0.1, 0.7, 0.4, 0.6]}}),
     "stg", "answer.boxes[0.5]", "check_boxes"),
    ("video in two splits", leak_video, "ocr", "split", "check_video_split"),
    ("video file missing", edit("num", video="videos/nope.mp4"), "num", "video", "check_video"),
    ("corrupt video", edit("num", video="videos/corrupt.mp4"), "num", "video", "check_video"),
    ("empty video file", edit("num", video="videos/empty.mp4"), "num", "video", "check_video"),
    ("truncated video", edit("num", video="videos/truncated.mp4"), "num", "video", "check_video"),
    ("truncated video, index intact", edit("num", video="videos/truncated_faststart.mp4"), "num", "video",
     "check_video"),
    ("duration disagrees with the file", edit("reg", duration=3.0), "reg", "duration", "check_video"),
    ("frame size disagrees with the file", edit("reg", width=64), "reg", "width", "check_video"),
]


@pytest.mark.parametrize("kind, mutate, rid, field, column", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_fails_the_gate(tmp_path, videos, kind, mutate, rid, field, column):
    records = good_records()
    mutate(records)
    root = workspace(tmp_path, videos, records)
    with pytest.raises(ValidationFailed) as failure:
        run(FAST, root)
    lines = [line for line in str(failure.value).splitlines() if f"({column})" in line]
    assert len(lines) == 1, str(failure.value)
    named_fields = lines[0].split(" field ", 1)[1].split(": first offending ids")[0]
    assert f"'{rid}' (record " in lines[0] and field in named_fields, lines[0]
    assert failure.value.result["n_failed"] == 1, str(failure.value)  # concerns do not overlap
    assert not (root / VALIDATED_DIR).exists()
    written = json.loads((root / VALIDATION_RESULT).read_text())
    assert written["success"] is False and written["failed"] == failure.value.result["failed"]
    (outcome,) = [e for e in written["expectations"] if not e["success"]]
    assert outcome["column"] == column and rid in [ex["id"] for ex in outcome["examples"]]


def test_good_records_are_split_unchanged_with_reports(tmp_path, videos):
    records = good_records()
    root = workspace(tmp_path, videos, records)
    result = run(ValidateConfig(workers=1), root)
    assert result["success"] and result["n_records"] == 8 and result["n_videos"] == 4
    for split in ("train", "val", "test"):
        lines = (root / split_file(split)).read_text().splitlines()
        assert [json.loads(line) for line in lines] == [r for r in records if r["split"] == split]
    written = json.loads((root / VALIDATION_RESULT).read_text())
    assert written["counts"]["split"] == {"train": 4, "val": 2, "test": 2}
    assert written["n_expectations"] == len(written["expectations"]) >= 20
    assert all(e["success"] for e in written["expectations"])
    assert (root / "reports/validation/data_docs/index.html").is_file()


def test_a_failed_gate_keeps_the_last_good_splits_and_builds_docs(tmp_path, videos):
    """Issue: a failing records file used to delete the previous data/validated/. The new splits are
    swapped in only on success; the failure is in result.json, the last good splits stay."""
    records = good_records()
    root = workspace(tmp_path, videos, records)
    run(FAST, root)
    good = {split: (root / split_file(split)).read_bytes() for split in ("train", "val", "test")}
    by_id(records, "tg")["answer"] = [1.5, 0.5]
    by_id(records, "mc")["answer"] = "Z"
    write_jsonl(root / INTERIM_RECORDS, records)
    with pytest.raises(ValidationFailed, match=r"2 of \d+ expectations failed") as failure:
        run(ValidateConfig(workers=1), root)
    assert {split: (root / split_file(split)).read_bytes() for split in good} == good
    assert sorted(p.name for p in (root / VALIDATED_DIR).parent.iterdir()) == ["interim", "validated"]  # no temporaries
    assert json.loads((root / VALIDATION_RESULT).read_text())["success"] is False
    assert f"{VALIDATED_DIR}/ was left as it was" in str(failure.value)
    assert "'tg' (record 6): answer: span [1.5, 0.5]" in str(failure.value)
    docs = root / "reports/validation/data_docs"
    pages = list(docs.glob("validations/**/*.html"))
    assert (docs / "index.html").is_file() and pages and "check_answer" in pages[0].read_text()


@pytest.mark.parametrize("video", ["../outside/train_a.mp4", "videos/../../outside/train_a.mp4"])
def test_a_video_outside_the_workspace_fails_the_gate_unopened(tmp_path, videos, monkeypatch, video):
    """The file exists and matches the record, yet a path climbing out of the workspace fails the video
    check, and is not probed at all (probing switched off or not)."""
    (tmp_path / "outside").symlink_to(videos)
    records = good_records()
    by_id(records, "num")["video"] = video
    (tmp_path / "ws").mkdir()
    root = workspace(tmp_path / "ws", videos, records)
    probed = []
    real = validate.probe_videos
    monkeypatch.setattr(validate, "probe_videos", lambda paths, *a: probed.extend(paths) or real(paths, *a))
    for cfg in (FAST, ValidateConfig(workers=1, data_docs=False, probe_videos=False)):
        with pytest.raises(ValidationFailed, match=r"'num' \(record 2\): video: .* climbs out of the workspace"):
            run(cfg, root)
    assert probed and str(tmp_path / "outside/train_a.mp4") not in probed


def test_missing_split_and_empty_input(tmp_path, videos):
    records = [r for r in good_records() if r["split"] != "test"]
    root = workspace(tmp_path, videos, records)
    with pytest.raises(ValidationFailed, match=r"distinct_values_to_contain_set\(split\).*field split.*'test'"):
        run(FAST, root)
    write_jsonl(root / INTERIM_RECORDS, [])
    with pytest.raises(ValidationFailed, match=r"row_count_to_be_between failed, field records"):
        run(FAST, root)
    assert not (root / VALIDATED_DIR).exists()


def test_bad_json_line_names_the_file_and_line(tmp_path, videos):
    root = workspace(tmp_path, videos, good_records(), raw_lines=['{"id": "broken",\n'])
    with pytest.raises(ValueError, match=r"records.jsonl:9: not valid JSON"):
        run(FAST, root)
    assert not (root / VALIDATED_DIR).exists()


def test_max_examples_and_absolute_paths(tmp_path, videos):
    records = good_records()
    for rec in records:
        rec["video"] = str(videos / os.path.basename(rec["video"]))  # absolute paths work too
        rec["question"] = ""
    root = workspace(tmp_path, videos, records)
    with pytest.raises(ValidationFailed) as failure:
        run(ValidateConfig(workers=1, data_docs=False, max_examples=2), root)
    (outcome,) = [e for e in failure.value.result["expectations"] if not e["success"]]
    assert outcome["unexpected_count"] == 8 and [ex["id"] for ex in outcome["examples"]] == ["mc", "num"]


def test_probe_pool_matches_serial(videos, monkeypatch):
    paths = sorted(str(p) for p in videos.glob("*.mp4"))
    serial = validate.probe_videos(paths, decode=True, workers=1)
    monkeypatch.setattr(validate, "POOL_MIN_VIDEOS", 1)
    assert validate.probe_videos(paths, decode=True, workers=2) == serial
    assert isinstance(serial[str(videos / "truncated_faststart.mp4")], str)


def test_truncation_is_caught_by_decoding_and_by_the_packet_timestamps_alone(tmp_path, videos):
    records = good_records()
    by_id(records, "num")["video"] = "videos/truncated_faststart.mp4"
    root = workspace(tmp_path, videos, records)
    with pytest.raises(ValidationFailed, match=r"'num' \(record 2\): video: .*decoding failed"):
        run(FAST, root)
    # the header-only probe reads every packet's pts (presentation times): the missing packets show
    with pytest.raises(ValidationFailed, match=r"'num' \(record 2\): duration: .* 1 frames"):
        run(ValidateConfig(workers=1, data_docs=False, decode_frames=False), root)
    by_id(records, "num")["video"] = "videos/nope.mp4"
    write_jsonl(root / INTERIM_RECORDS, records)
    assert run(ValidateConfig(workers=1, data_docs=False, probe_videos=False), root)["success"]


def test_every_check_column_is_asserted_by_the_suite(videos):
    records = good_records()
    keys = [validate.video_key(r["video"], videos.parent / "x") for r in records]
    frame = validate.build_frame(records, keys, {}, FAST)
    checks = {c for c in frame.columns if c.startswith("check_")}
    asserted = {e.column for e in build_expectations(list(FAST.required_splits))
                if e.expectation_type == "expect_column_values_to_be_null"}
    assert checks == asserted == CHECK_COLUMNS


def test_config_rejects_unknown_keys():
    assert ValidateConfig.from_params({"required_splits": ["train"]}).required_splits == ("train",)
    with pytest.raises(KeyError, match="probe_vidoes"):
        ValidateConfig.from_params({"probe_vidoes": True})


def test_main_exit_code(tmp_path, videos, monkeypatch):
    records = good_records()
    root = workspace(tmp_path, videos, records)
    (root / "params.yaml").write_text("validate:\n  workers: 1\n  data_docs: false\n")
    monkeypatch.chdir(root)
    assert validate.main() == 0
    by_id(records, "num")["split"] = "dev"
    write_jsonl(root / INTERIM_RECORDS, records)
    assert validate.main() == 1
