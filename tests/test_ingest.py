"""The ingest stage: all sources into one record file, splits, cross-source checks, nothing written on failure."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages import ingest
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.data.importers.common import hash_split
from videoreasoner.core.paths import INGEST_REPORT, INTERIM_RECORDS, SYNTHETIC_ANNOTATIONS
from videoreasoner.core.schema import REQUIRED_FIELDS, RecordError
from videoreasoner.video.decoding import encode_mp4


def make_video(path: Path) -> None:
    encode_mp4(np.zeros((8, 32, 32, 3), np.uint8), 4, path)  # 2.0 s


def write(root: Path, rel: str, text: str) -> str:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text, encoding="utf-8")
    return rel


def synthetic_source(root: Path) -> dict:
    rows = [{"id": f"s{i}", "video": f"videos/s{i}.mp4", "duration": 2.0, "problem_type": "numerical",
             "question": "How many?", "answer": str(i), "split": split, "source": "synthetic-world/v1"}
            for i, split in enumerate(["train", "train", "val", "test"])]
    path = write(root, str(SYNTHETIC_ANNOTATIONS), "".join(json.dumps(r) + "\n" for r in rows))
    return {"name": "synthetic", "format": "synthetic", "path": path}


def charades_source(root: Path, n_videos: int = 3, **extra) -> dict:
    lines = []
    for v in range(n_videos):
        make_video(root / f"data/raw/charades/videos/V{v:03d}.mp4")
        lines += [f"V{v:03d} 0.0 1.0##someone opens a door.", f"V{v:03d} 0.5 1.5##someone sits down."]
    path = write(root, "data/raw/charades/sta.txt", "\n".join(lines) + "\n")
    return {"name": "charades", "format": "charades_sta", "path": path,
            "video_root": "data/raw/charades/videos", **({"split": "test"} | extra)}


def video_r1_source(root: Path, solution: str = "<answer>A</answer>") -> dict:
    make_video(root / "data/raw/vr1/clip.mp4")
    items = [{"problem_id": 1, "problem": "Which?", "data_type": "video", "problem_type": "multiple choice",
              "options": ["A. one", "B. two"], "solution": "<answer>A</answer>", "path": "./clip.mp4"},
             {"problem_id": 2, "problem": "Which?", "data_type": "video", "problem_type": "multiple choice",
              "options": ["A. one", "B. two"], "solution": solution, "path": "./clip.mp4"}]
    path = write(root, "data/raw/vr1/Video-R1-260k.json", json.dumps(items))
    return {"name": "video_r1", "format": "video_r1", "path": path, "version": "260k", "split": "train"}


def outputs_exist(root: Path) -> bool:
    return (root / INTERIM_RECORDS).exists() or (root / INGEST_REPORT).exists()


def test_run_writes_records_and_summary(tmp_path):
    cfg = {"sources": [synthetic_source(tmp_path), charades_source(tmp_path), video_r1_source(tmp_path)]}
    summary = ingest.run(cfg, tmp_path)
    records = read_jsonl(tmp_path / INTERIM_RECORDS)
    assert len(records) == 4 + 6 + 2 == summary["n_records"]
    assert all(set(REQUIRED_FIELDS) <= set(r) for r in records)
    assert len({r["id"] for r in records}) == len(records)
    assert {r["source"] for r in records} == {"synthetic-world/v1", "charades", "video_r1@260k"}
    assert records[0]["video"] == "data/raw/synthetic/videos/s0.mp4"
    assert all((tmp_path / r["video"]).is_file() for r in records if not r["id"].startswith("synthetic:"))
    assert summary["by_source"] == {"synthetic": 4, "charades": 6, "video_r1": 2}
    assert summary["by_split"] == {"test": 7, "train": 4, "val": 1}
    assert summary["by_problem_type"] == {"multiple_choice": 2, "numerical": 4, "temporal_grounding": 6}
    assert summary["sources"]["video_r1"]["source"] == "video_r1@260k"
    assert json.loads((tmp_path / INGEST_REPORT).read_text()) == summary


def test_malformed_entry_in_a_later_source_writes_nothing(tmp_path):
    cfg = {"sources": [synthetic_source(tmp_path), video_r1_source(tmp_path, solution="A")]}
    with pytest.raises(RecordError, match=r"Video-R1-260k\.json\[1\]: field 'solution': no <answer> tag"):
        ingest.run(cfg, tmp_path)
    assert not outputs_exist(tmp_path)


def test_failure_keeps_previous_outputs_intact(tmp_path):
    ingest.run({"sources": [synthetic_source(tmp_path)]}, tmp_path)
    before = (tmp_path / INTERIM_RECORDS).read_bytes()
    with pytest.raises(RecordError):
        ingest.run({"sources": [synthetic_source(tmp_path), video_r1_source(tmp_path, "B")]}, tmp_path)
    assert (tmp_path / INTERIM_RECORDS).read_bytes() == before


@pytest.mark.parametrize("change, field, problem", [
    ({"format": "csv"}, "format", "unknown format 'csv'"),
    ({"path": "data/raw/nope.txt"}, "path", "does not exist"),
    ({"split": "dev"}, "split", "expected one of"),
    ({"split_fractions": {"val": 0.5}}, "split", "not both"),
    ({"split": None, "split_fractions": {"val": 0.7, "test": 0.7}}, "split_fractions", "more than 1"),
    ({"split": None, "split_fractions": {"dev": 0.1}}, "split_fractions", "val and/or test"),
    ({"split": None}, "split", "give split"),
    ({"video_ext": ".mkv", "frame_base": 0}, "frame_base", "not a key of a charades_sta source"),
    ({"name": "a:b"}, "name", "without ':'"),
])
def test_bad_source_entry_names_params_entry_and_field(tmp_path, change, field, problem):
    cfg = {"sources": [synthetic_source(tmp_path), {**charades_source(tmp_path, 1), **change}]}
    with pytest.raises(RecordError) as exc_info:
        ingest.run(cfg, tmp_path)
    message = str(exc_info.value)
    assert "params.yaml data.sources[1]" in message and f"field '{field}'" in message and problem in message
    assert not outputs_exist(tmp_path)


def test_duplicate_source_names_and_empty_sources(tmp_path):
    src = synthetic_source(tmp_path)
    with pytest.raises(RecordError, match="duplicate source name 'synthetic'"):
        ingest.run({"sources": [src, src]}, tmp_path)
    with pytest.raises(RecordError, match="field 'sources'"):
        ingest.run({"sources": []}, tmp_path)


def test_split_fractions_are_deterministic_and_video_disjoint(tmp_path):
    cfg = {"sources": [charades_source(tmp_path, 24, split=None, split_fractions={"val": 0.3, "test": 0.3})]}
    ingest.run(cfg, tmp_path)
    first = read_jsonl(tmp_path / INTERIM_RECORDS)
    ingest.run(cfg, tmp_path)
    second = read_jsonl(tmp_path / INTERIM_RECORDS)
    assert first == second
    splits_of = {}
    for rec in first:
        splits_of.setdefault(rec["video"], set()).add(rec["split"])
    assert all(len(s) == 1 for s in splits_of.values()) and len(splits_of) == 24
    assert {s for (s,) in splits_of.values()} == {"train", "val", "test"}


def test_hash_split_edges():
    videos = [f"v{i}.mp4" for i in range(200)]
    assert {hash_split(v, {}) for v in videos} == {"train"}
    assert {hash_split(v, {"val": 1.0}) for v in videos} == {"val"}
    assert [hash_split(v, {"val": 0.2}) for v in videos] == [hash_split(v, {"val": 0.2}) for v in videos]
    assert 20 < sum(hash_split(v, {"val": 0.2}) == "val" for v in videos) < 60


def test_same_video_in_two_splits_across_sources_is_an_error(tmp_path):
    a = charades_source(tmp_path, 1, split="train")
    b = {**a, "name": "charades_again", "split": "test"}
    with pytest.raises(RecordError, match="no video may be in two splits"):
        ingest.run({"sources": [a, b]}, tmp_path)
    assert not outputs_exist(tmp_path)


def test_main_reads_params_and_exits_cleanly_on_error(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    params = {"data": {"sources": [synthetic_source(tmp_path)], "synthetic": {"n_videos": 4}}}
    write(tmp_path, "params.yaml", yaml.safe_dump(params))
    ingest.main()
    assert len(read_jsonl(tmp_path / INTERIM_RECORDS)) == 4
    params["data"]["sources"][0]["format"] = "video-r1"
    write(tmp_path, "params.yaml", yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exc_info:
        ingest.main()
    assert exc_info.value.code == 1 and "unknown format 'video-r1'" in caplog.text


def _video_r1_dataset(folder: Path, n: int = 16) -> None:
    """A Video-R1 file naming n clips under folder/clips/ (paths as Video-R1 writes them: "./…")."""
    items = []
    for i in range(n):
        make_video(folder / f"clips/c{i:02d}.mp4")
        items.append({"problem_id": i, "problem": "How many?", "data_type": "video", "problem_type": "numerical",
                      "options": [], "solution": f"<answer>{i}</answer>", "path": f"./clips/c{i:02d}.mp4"})
    write(folder, "Video-R1-260k.json", json.dumps(items))


def test_moving_a_dataset_keeps_its_splits(tmp_path):
    """Issue: the split hash read the path as written in the record (workspace-relative or absolute), so
    the same Video-R1 file split differently from another directory. It reads the video_root-relative path."""
    fractions = {"val": 0.4, "test": 0.2}
    workspace = tmp_path / "ws"
    _video_r1_dataset(workspace / "data/raw/vr1")
    source = {"name": "vr1", "format": "video_r1", "path": "data/raw/vr1/Video-R1-260k.json",
              "split_fractions": fractions}
    ingest.run({"sources": [source]}, workspace)
    before = {r["id"]: r["split"] for r in read_jsonl(workspace / INTERIM_RECORDS)}
    assert set(before.values()) == {"train", "val", "test"}

    (workspace / "data/moved").mkdir(parents=True)
    (workspace / "data/raw/vr1").rename(workspace / "data/moved/video-r1")  # elsewhere in the workspace
    ingest.run({"sources": [{**source, "path": "data/moved/video-r1/Video-R1-260k.json"}]}, workspace)
    records = read_jsonl(workspace / INTERIM_RECORDS)
    assert records[0]["video"] == "data/moved/video-r1/clips/c00.mp4"
    assert {r["id"]: r["split"] for r in records} == before

    outside = tmp_path / "shared" / "datasets"  # outside the workspace: absolute paths
    outside.mkdir(parents=True)
    (workspace / "data/moved/video-r1").rename(outside / "vr1")
    ingest.run({"sources": [{**source, "path": str(outside / "vr1/Video-R1-260k.json")}]}, workspace)
    records = read_jsonl(workspace / INTERIM_RECORDS)
    assert records[0]["video"] == str(outside / "vr1/clips/c00.mp4")
    assert {r["id"]: r["split"] for r in records} == before


def test_sources_sharing_a_video_tree_agree_on_its_splits(tmp_path):
    """Video-R1-260k and its COT subset name the same clips: a shared clip lands in one split for both."""
    _video_r1_dataset(tmp_path / "data/raw/vr1", n=12)
    rl = {"name": "vr1_rl", "format": "video_r1", "path": "data/raw/vr1/Video-R1-260k.json",
          "split_fractions": {"val": 0.5}}
    sft = {**rl, "name": "vr1_cot"}
    summary = ingest.run({"sources": [rl, sft]}, tmp_path)
    assert summary["sources"]["vr1_rl"]["by_split"] == summary["sources"]["vr1_cot"]["by_split"]


def bad_charades_source(root: Path, **extra) -> dict:
    """Three videos, two lines each; lines 2 and 4 have a bad start ("1,5" is no time)."""
    source = charades_source(root, **extra)
    lines = (root / source["path"]).read_text().splitlines()
    for i in (1, 3):
        lines[i] = lines[i].replace(" 0.5 ", " 1,5 ")
    write(root, source["path"], "\n".join(lines) + "\n")
    return source


def test_by_default_every_malformed_entry_is_listed_then_the_stage_fails(tmp_path):
    cfg = {"sources": [synthetic_source(tmp_path), bad_charades_source(tmp_path)]}
    with pytest.raises(RecordError) as exc_info:
        ingest.run(cfg, tmp_path)
    message = str(exc_info.value)
    assert "data/raw/charades/sta.txt: 2 malformed entries (all listed)" in message
    assert "sta.txt:2: field 'start': not a number: '1,5'" in message and "sta.txt:4: field 'start'" in message
    assert not outputs_exist(tmp_path)
    cfg["max_errors_reported"] = 1
    with pytest.raises(RecordError, match=r"2 malformed entries \(1 listed\)") as exc_info:
        ingest.run(cfg, tmp_path)
    assert "sta.txt:4" not in str(exc_info.value)


@pytest.mark.parametrize("where", ["source", "section"])
def test_on_error_skip_leaves_them_out_and_records_them_in_the_summary(tmp_path, where):
    source = bad_charades_source(tmp_path, **({"on_error": "skip"} if where == "source" else {}))
    cfg = {"sources": [synthetic_source(tmp_path), source], **({"on_error": "skip"} if where == "section" else {})}
    summary = ingest.run(cfg, tmp_path)
    assert summary["by_source"] == {"synthetic": 4, "charades": 4}
    assert len(read_jsonl(tmp_path / INTERIM_RECORDS)) == 8
    skipped = summary["sources"]["charades"]["skipped"]
    assert skipped["n"] == 2 and len(skipped["errors"]) == 2
    assert skipped["errors"][0].startswith("data/raw/charades/sta.txt:2: field 'start'")
    synthetic = summary["sources"]["synthetic"]  # a fail source (the default) adds nothing
    assert synthetic["skipped"] == {"n": 0, "errors": []} if where == "section" else "skipped" not in synthetic
    assert json.loads((tmp_path / INGEST_REPORT).read_text()) == summary


@pytest.mark.parametrize("change, field", [({"on_error": "ignore"}, "on_error"), ({"max_errors": 0}, "max_errors"),
                                           ({"max_errors": True}, "max_errors")])
def test_bad_error_policy_names_the_params_entry_and_field(tmp_path, change, field):
    cfg = {"sources": [{**charades_source(tmp_path, 1), **change}]}
    with pytest.raises(RecordError, match=rf"params\.yaml data\.sources\[0\] \(charades\): field '{field}'"):
        ingest.run(cfg, tmp_path)
