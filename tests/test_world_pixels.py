"""Ground truth is right by construction: decode the .mp4 files, recover spans, boxes, counts and
directions from colour masks, and compare them with the annotations (within a frame and a few pixels)."""
import json

import numpy as np
import pytest

from stages.generate import run
from videoreasoner.data.world.streams import scene_for
from videoreasoner.video.decoding import decode_frames
from videoreasoner.data.world.config import PALETTE, WorldConfig

CFG = WorldConfig(seed=7, videos={"test": 24}, workers=1, distractors=(1, 2))
MIN_PIXELS = 30  # an object is never smaller than ~2 r^2 = 288 px; compression noise stays far below this


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    run(CFG, out)
    records = [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]
    frames = {}
    for r in records:
        if r["video"] not in frames:
            frames[r["video"]] = decode_frames(out / r["video"])
    return records, frames


def colour_masks(frames: np.ndarray, colour: str) -> np.ndarray:
    diff = frames.astype(np.int32) - np.array(PALETTE[colour], dtype=np.int32)
    return (diff ** 2).sum(-1) < 60 ** 2


def object_colour(record) -> str:
    return next(c for c in PALETTE if f" {c} " in f" {record['question']} ")


def recovered_span(masks: np.ndarray, fps: float) -> list[float]:
    visible = np.flatnonzero(masks.reshape(len(masks), -1).sum(1) >= MIN_PIXELS)
    return [visible[0] / fps, (visible[-1] + 1) / fps]


def recovered_box_px(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def unoccluded(record, t: float) -> bool:
    """The asked-about object's box overlaps no other object at t (else its mask is partly hidden)."""
    idx = int(record["meta"]["video_id"].split("-")[1])
    scene, _ = scene_for(CFG, record["split"], idx)
    target = next(o for o in scene.objects if o.name in record["question"])
    box = scene.box_at(target, t)
    for other in scene.visible_at(t):
        if other is not target:
            b = scene.box_at(other, t)
            if min(box[2], b[2]) > max(box[0], b[0]) and min(box[3], b[3]) > max(box[1], b[1]):
                return False
    return True


def by_task(records, task):
    found = [r for r in records if r["meta"]["task"] == task]
    assert found, f"no {task} records in the sample"
    return found


def test_temporal_spans_match_pixels(world):
    records, frames = world
    for r in by_task(records, "when_visible") + by_task(records, "track"):
        video, fps = frames[r["video"]]
        span = r["answer"] if r["problem_type"] == "temporal_grounding" else r["answer"]["span"]
        got = recovered_span(colour_masks(video, object_colour(r)), fps)
        assert abs(got[0] - span[0]) <= 1 / fps + 1e-9 and abs(got[1] - span[1]) <= 1 / fps + 1e-9, (r["id"], got, span)


def _check_box(r, t, box, frames, checked):
    video, fps = frames[r["video"]]
    if not unoccluded(r, t):
        return
    mask = colour_masks(video[round(t * fps)], object_colour(r))
    got = recovered_box_px(mask)
    want = [box[0] * CFG.width, box[1] * CFG.height, box[2] * CFG.width, box[3] * CFG.height]
    # 4 px: the tips of diamonds and triangles are one pixel wide and 4:2:0 chroma blurs them away
    assert np.allclose(got, want, atol=4), (r["id"], t, got, want)
    checked.append(r["id"])


def test_boxes_match_pixels(world):
    records, frames = world
    checked = []
    for r in by_task(records, "where_at_time"):
        _check_box(r, r["answer"]["time"], r["answer"]["box"], frames, checked)
    for r in by_task(records, "track"):
        for t, box in r["answer"]["boxes"].items():
            _check_box(r, float(t), box, frames, checked)
    assert len(checked) >= 10


def test_counts_match_pixels(world):
    records, frames = world
    for r in by_task(records, "count"):
        video, _ = frames[r["video"]]
        present = [c for c in PALETTE if colour_masks(video, c).reshape(len(video), -1).sum(1).max() >= MIN_PIXELS]
        assert len(present) == int(r["answer"]), (r["id"], present)


def test_direction_matches_pixels(world):
    records, frames = world
    for r in by_task(records, "direction"):
        video, _ = frames[r["video"]]
        masks = colour_masks(video, object_colour(r))
        visible = [k for k in range(len(video)) if masks[k].sum() >= MIN_PIXELS]
        (y0, x0), (y1, x1) = (np.argwhere(masks[k]).mean(0) for k in (visible[0], visible[-1]))
        moved = {"left to right": x1 - x0, "right to left": x0 - x1,
                 "top to bottom": y1 - y0, "bottom to top": y0 - y1}
        said = r["options"][ord(r["answer"]) - ord("A")]
        assert max(moved, key=moved.get) == said, (r["id"], moved, said)
