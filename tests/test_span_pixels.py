"""The half-open span rule, proved from decoded pixels: render a few clips with the world, decode them
with the project's decoder, find the frames where each object's colour is drawn, and check that a
grounding record's frame set, tube_frames(span, decoded frame times), is exactly those frames and that
every annotated box time is one of them. Nothing here reads the scene geometry the clips were drawn from."""
import json

import numpy as np
import pytest

from stages.generate import run
from videoreasoner.answers.iou import tube_frames
from videoreasoner.data.world.config import PALETTE, WorldConfig
from videoreasoner.video.decoding import read_frames

# 4 fps with boundaries on every frame (grid 0.25 s) and on every 4th frame (1 s): spans that start and
# end anywhere, and objects that leave well before the clip ends.
CONFIGS = (WorldConfig(seed=21, videos={"test": 6}, workers=1, boundary_grid_s=0.25, box_step_s=0.5),
           WorldConfig(seed=22, videos={"test": 6}, workers=1, objects=(2, 2), box_step_s=0.25))
COLOUR_DISTANCE = 60  # RGB distance to the palette colour: H.264 (4:2:0, crf 18) shifts colours a little
MIN_PIXELS = 30  # an object covers at least ~2 r^2 = 512 px; coding noise near edges stays far below this


@pytest.fixture(scope="module", params=range(len(CONFIGS)), ids=["grid_one_frame", "grid_one_second"])
def clips(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    run(CONFIGS[request.param], out)
    records = [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]
    decoded = {video: read_frames(out / video) for video in {r["video"] for r in records}}
    return records, decoded


def drawn_frames(frames: np.ndarray, colour: str) -> set[int]:
    """Indices of the frames with at least MIN_PIXELS pixels of `colour` (within COLOUR_DISTANCE)."""
    diff = frames.astype(np.int32) - np.array(PALETTE[colour], dtype=np.int32)
    counts = ((diff ** 2).sum(-1) < COLOUR_DISTANCE ** 2).reshape(len(frames), -1).sum(1)
    return set(np.flatnonzero(counts >= MIN_PIXELS).tolist())


def colour_of(record: dict) -> str:
    """The colour of the object a grounding question names ("When is the red square visible?")."""
    (colour,) = [c for c in PALETTE if f" {c} " in f" {record['question']} "]
    return colour


def test_grounding_frame_sets_are_exactly_the_frames_the_object_is_drawn_in(clips):
    records, decoded = clips
    grounding = [r for r in records if r["problem_type"] in ("temporal_grounding", "spatio_temporal_grounding")]
    tubes = [r for r in grounding if r["problem_type"] == "spatio_temporal_grounding"]
    assert len(tubes) >= 6
    leaving = 0
    for r in grounding:
        frames, times = decoded[r["video"]]
        span = r["answer"]["span"] if r["problem_type"] == "spatio_temporal_grounding" else r["answer"]
        drawn = drawn_frames(frames, colour_of(r))
        assert drawn and tube_frames(span, times) == drawn, (r["id"], span, sorted(drawn))
        leaving += max(drawn) < len(times) - 1
    assert leaving >= 3  # objects gone before the last frame: an inclusive end would add their exit frame


def test_every_annotated_box_time_is_a_frame_the_object_is_drawn_in(clips):
    records, decoded = clips
    checked = 0
    for r in (r for r in records if r["problem_type"] == "spatio_temporal_grounding"):
        frames, times = decoded[r["video"]]
        drawn = drawn_frames(frames, colour_of(r))
        for key in r["answer"]["boxes"]:
            (k,) = [k for k, t in enumerate(times) if abs(t - float(key)) < 1e-6]  # box times are frame times
            assert k in drawn, (r["id"], key, sorted(drawn))
            checked += 1
    assert checked >= 20
