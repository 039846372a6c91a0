"""Long clips of the synthetic world (needle in a haystack) and the long-video benchmark.

The world's long mode is checked from the decoded pixels (a saturated colour shows exactly while a
needle is annotated as visible); the benchmark runs at a tiny scale and prints its table (its figures
are not asserted: timings belong in benchmarks/)."""
import hashlib
import importlib.util
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from videoreasoner.core.atomic import read_jsonl
from stages.generate import run
from videoreasoner.video.decoding import decode_frames
from videoreasoner.data.world.config import LongConfig, WorldConfig

ROOT = Path(__file__).resolve().parents[1]
LONG = LongConfig(videos={"test": 2}, duration_s=(20.0, 40.0), events=(1, 3), decoys=(1, 2))
WORLD = WorldConfig(seed=5, videos={"val": 1}, workers=1, long=LONG)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    run(WORLD, root)
    return root, read_jsonl(root / "annotations.jsonl")


def test_long_clips_are_annotated_in_the_record_schema(world):
    from videoreasoner.data.record_checks import check_answer, check_times

    root, records = world
    long = [r for r in records if r["source"] == "synthetic-world-long/v1"]
    assert {r["meta"]["video_id"] for r in long} == {"long-test-00000", "long-test-00001"}
    for r in long:
        assert r["split"] == "test" and r["fps"] == 1 and 20 <= r["duration"] <= 40 and r["reasoning"]
        assert check_answer(r) is None and check_times(r) is None, r["id"]
        assert (root / r["video"]).is_file()
    grounding = [r for r in long if r["problem_type"] == "temporal_grounding"]
    counts = {r["meta"]["video_id"]: int(r["answer"]) for r in long if r["problem_type"] == "numerical"}
    assert len(grounding) == sum(counts.values()) and all(r["question"].startswith("When is the") for r in grounding)


def test_a_colour_shows_exactly_while_a_needle_is_visible(world):
    """Decoys and dots are grey: a saturated pixel appears iff a needle's span covers the frame time."""
    root, records = world
    for video_id in ("long-test-00000", "long-test-00001"):
        spans = [r["answer"] for r in records if r["meta"]["video_id"] == video_id
                 and r["problem_type"] == "temporal_grounding"]
        frames, fps = decode_frames(root / f"videos/{video_id}.mp4")
        chroma = frames.max(axis=-1).astype(int) - frames.min(axis=-1)
        coloured = (chroma > 100).sum(axis=(1, 2)) > 50
        expected = [any(s <= k / fps < e for s, e in spans) for k in range(len(frames))]
        assert coloured.tolist() == expected, video_id


def test_long_mode_is_deterministic_and_leaves_the_default_clips_alone(world, tmp_path):
    root, records = world
    run(WORLD, tmp_path / "again")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "again/annotations.jsonl") == digest(root / "annotations.jsonl")
    run(replace(WORLD, long=LongConfig()), tmp_path / "off")
    default = [r for r in records if r["source"] == "synthetic-world/v1"]
    assert read_jsonl(tmp_path / "off/annotations.jsonl") == default
    assert digest(tmp_path / "off/videos/val-00000.mp4") == digest(root / "videos/val-00000.mp4")


@pytest.mark.parametrize("params, match", [
    ({"lenght": 1}, "unknown key 'lenght'"),
    ({"duration_s": [5, 10]}, "long.duration_s"),
    ({"events": [0, 2]}, "long.events"),
    ({"videos": {"holdout": 3}}, "long.videos"),
])
def test_bad_long_params_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        WorldConfig.from_params({"long": params})


def _benchmark():
    spec = importlib.util.spec_from_file_location("long_video", ROOT / "benchmarks/long_video.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_oracle_iou_is_exact_when_adjacent_frames_bracket_both_boundaries():
    oracle = _benchmark().oracle_iou
    assert oracle([0.0, 9.0, 10.0, 13.0, 14.0, 30.0], [10.0, 14.0], 40.0, 1.0) == (True, 1.0)
    hit, iou = oracle([0.0, 8.0, 12.0, 20.0], [10.0, 14.0], 40.0, 1.0)  # boundaries known to ±2 s
    assert hit and iou == pytest.approx(3.5 / 6.5)  # guessed [10.5, 16.5] against [10, 14]
    assert oracle([0.0, 20.0], [10.0, 14.0], 40.0, 1.0) == (False, 0.0)


def test_long_video_benchmark_prints_its_table():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/long_video.py"), "--clips", "1", "--lengths", "20",
                          "--split-videos", "2", "--n-boot", "50"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines()]
    assert {r[1] for r in rows if r and r[0] == "20"} == {"uniform", "fps", "keyframes", "keyclips"}
    assert sum(1 for r in rows if r and r[-1].endswith("]") and "-" in r) == 3  # three paired differences
    assert np.isfinite([float(r[2]) for r in rows if r and r[0] == "20"]).all()  # video tokens per clip
