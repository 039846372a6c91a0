"""Frame samplers (videoreasoner/video/samplers.py): equal video tokens at equal budget through the real processor,
exact timestamps, change-driven placement, params errors, and the video-token meter."""
from dataclasses import replace

import numpy as np
import pytest

from videoreasoner.core.atomic import read_jsonl
from videoreasoner.video.samplers import (
    COVERAGE, SAMPLERS, Clip, Selection, change_signal, coverage_gaps, place, processor_size, reduced_size, select,
    video_tokens_for,
)
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import (
    build_messages, count_video_tokens, processor_inputs, sample_video, video_tokens,
)
from videoreasoner.video.decoding import decode_frames


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One default 8-s clip (4 fps) and one 60-s long clip (1 fps) with their records."""
    from stages.generate import run
    from videoreasoner.data.world.config import LongConfig, WorldConfig

    root = tmp_path_factory.mktemp("world")
    run(WorldConfig(seed=3, videos={"val": 1}, workers=1,
                    long=LongConfig(videos={"test": 1}, duration_s=(60.0, 60.0), events=(2, 2))), root)
    records = read_jsonl(root / "annotations.jsonl")
    return root, records


@pytest.fixture(scope="module")
def processor(world):
    from videoreasoner.training.tiny_model import build_processor, corpus_texts, train_tokenizer

    return build_processor(train_tokenizer(corpus_texts(world[1]), 400), VideoConfig())


def paths(world):
    root = world[0]
    return {"default": root / "videos/val-00000.mp4", "long": root / "videos/long-test-00000.mp4"}


# (clip, frame budget, samplers below the budget): fps keeps an exact stride (60 frames / 16 -> stride 4,
# 15 -> 14 frames); key clips take a file of fewer than 4 × 16 frames whole at 56 px (60 frames).
@pytest.mark.parametrize("clip, budget, below", [("default", 8, set()), ("default", 4, set()),
                                                 ("long", 8, set()), ("long", 16, {"fps", "keyclips"})])
def test_every_sampler_costs_the_same_video_tokens_at_the_same_budget(world, processor, clip, budget, below):
    record = world[1][0]
    counts = {}
    for name in SAMPLERS:
        cfg = VideoConfig(sampler=name, fps=1.0, min_frames=budget, max_frames=budget)
        video = sample_video(paths(world)[clip], cfg)
        batch = processor_inputs(processor, [build_messages(record, with_target=False)], [video], cfg,
                                 add_generation_prompt=True)
        counts[name] = video_tokens(batch)[0]
        assert counts[name] == int((batch["input_ids"][0] == processor.video_token_id).sum())
        assert counts[name] == video_tokens_for(len(video.frames), *video.frames.shape[1:3], cfg)
    budget_tokens = budget // 2 * 16  # 112 px: 4 × 4 merged tokens per temporal patch
    assert {n for n, c in counts.items() if c != budget_tokens} == below, counts
    assert max(counts.values()) == budget_tokens


def test_timestamps_are_the_true_times_of_the_frames_returned(world):
    path = paths(world)["long"]
    every, fps = decode_frames(path)
    for name in SAMPLERS:
        video = sample_video(path, VideoConfig(sampler=name, min_frames=8, max_frames=8))
        assert video.timestamps == tuple(i / fps for i in video.indices) and video.sampler == name
        assert list(video.indices) == sorted(set(video.indices))
        if video.frames.shape[1:3] == every.shape[1:3]:
            assert np.array_equal(video.frames, every[list(video.indices)])
        assert video.sampled_fps == pytest.approx(len(video.indices) / 60.0)  # the mean rate


def test_fps_sampler_keeps_an_exact_stride_and_caps_the_count(world):
    video = sample_video(paths(world)["default"], VideoConfig(sampler="fps", fps=2.0, max_frames=16))
    assert video.indices == tuple(range(0, 32, 2)) and video.choice == {"stride": 2, "offset": 0}
    capped = sample_video(paths(world)["long"], VideoConfig(sampler="fps", fps=1.0, max_frames=8))
    # 8 frames at stride 8 span 57 of 60 frames: the run is centred, not flush with the start
    assert capped.indices == tuple(range(1, 60, 8)) and capped.choice == {"stride": 8, "offset": 1}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_reaches_both_ends_of_the_clip(world, name):
    for path in paths(world).values():
        video = sample_video(path, VideoConfig(sampler=name, min_frames=4, max_frames=8))
        start, end, inner = coverage_gaps(Clip(str(path), video.n_file_frames, video.file_fps, 112, 112),
                                          video.indices)
        share = COVERAGE.get(name, 1.0)  # uniform: half its largest gap; the others a whole one
        assert max(start, end) <= share * inner + 1 / video.file_fps + 1e-9, (name, path, video.indices)


def test_a_covering_sampler_that_skips_the_end_is_an_error(world, monkeypatch):
    """The old uniform rule (frame floor(k n / N) from frame 0) left the last stride unseen: loud now."""
    def from_the_start(clip, cfg):
        n = 4
        return Selection(tuple(k * clip.n_frames // n for k in range(n)))

    monkeypatch.setitem(SAMPLERS, "uniform", from_the_start)
    clip = Clip("c.mp4", 132, 25.0, 112, 112)  # 5.28 s: the old frames at 0, 1.32, 2.64, 3.96 s
    with pytest.raises(RuntimeError, match="uniform leaves 0 s unseen at the start and 1.32 s at the end of a "
                                           "5.28-s clip, with 1.32 s between its frames"):
        select(clip, VideoConfig(sampler="uniform"))


def test_key_clips_bracket_the_largest_change_and_keyframes_keep_it(world):
    path = paths(world)["long"]
    clip = Clip(str(path), 60, 1.0, 112, 112)
    indices, scores = change_signal(clip, VideoConfig())
    top = indices[int(np.argmax(np.where(np.isfinite(scores), scores, -1)))]
    key = sample_video(path, VideoConfig(sampler="keyframes", min_frames=8, max_frames=8))
    assert top in key.indices and 0 in key.indices and top in key.choice["change_frames"]
    clips = sample_video(path, VideoConfig(sampler="keyclips", min_frames=8, max_frames=8))
    assert {top - 1, top} <= set(clips.indices) and clips.choice["factor"] == 4
    assert clips.frames.shape == (32, 56, 56, 3)
    for start, length in clips.choice["clips"]:
        assert length % 2 == 0 and list(clips.indices).count(start) == 1


def test_needles_are_among_the_largest_changes(world):
    """The coloured shapes of the long clip start and end where the change signal peaks."""
    records = world[1]
    spans = [r["answer"] for r in records if r["source"].startswith("synthetic-world-long")
             and r["problem_type"] == "temporal_grounding"]
    indices, scores = change_signal(Clip(str(paths(world)["long"]), 60, 1.0, 112, 112), VideoConfig())
    order = [indices[i] for i in np.argsort(-np.nan_to_num(np.array(scores), posinf=-1))]
    boundaries = {int(t) for span in spans for t in span}
    assert boundaries <= set(order[:16])  # needles and decoys (at most 2 + 4 shapes, 2 changes each)


def test_place_is_exact_in_count_non_overlapping_and_starts_at_frame_zero():
    changes = [(10, 9.0), (11, 8.0), (40, 7.0), (3, 1.0)]
    segments, used = place(60, 4, 16, changes, n_change=2)
    frames = [k for s, n in segments for k in range(s, s + n)]
    assert len(frames) == len(set(frames)) == 16 and segments[0][0] == 0
    assert used == [10, 40] and {9, 10, 39, 40} <= set(frames)  # 11 touches the clip at 10: suppressed
    # no room for whole clips: pieces of the temporal patch, then single frames, fill the rest
    segments, _ = place(10, 4, 10, [(5, 1.0)], n_change=1, step=2)
    assert sorted(k for s, n in segments for k in range(s, s + n)) == list(range(10))


def test_reduced_size_keeps_tokens_over_factor_and_aspect():
    cfg = VideoConfig(max_pixels=448 * 252, min_pixels=28 * 28 * 4)
    h, w = processor_size(252, 448, cfg)
    small = reduced_size(252, 448, 4, cfg)
    assert (h // 28) * (w // 28) == 4 * (small[0] // 28) * (small[1] // 28)
    assert reduced_size(112, 112, 2, VideoConfig()) is None  # 2 × 4 merged tokens: aspect off by 2×
    assert reduced_size(112, 112, 16, VideoConfig()) is None  # below min_pixels


@pytest.mark.parametrize("params, match", [
    ({"sampler": "random"}, "sampler"), ({"change_share": 1.5}, "change_share"),
    ({"clip_frames": 3}, "clip_frames"), ({"keyclip_factor": 0}, "keyclip_factor"),
    ({"score_fps": 0}, "score_fps"),
])
def test_bad_sampler_params_are_named(params, match):
    with pytest.raises(ValueError, match=f"params video.{match}"):
        VideoConfig.from_params(params)


def test_meter_counts_the_video_tokens_of_every_processor_call(world, processor):
    record = world[1][0]
    cfg = VideoConfig(fps=1.0, max_frames=8)
    video = sample_video(paths(world)["default"], cfg)
    small = sample_video(paths(world)["default"], replace(cfg, min_frames=4, max_frames=4))
    with count_video_tokens() as meter:
        processor_inputs(processor, [build_messages(record)] * 2, [video, small], cfg)
    assert meter.counts == [64, 32]
    assert meter.summary() == {"video_tokens_per_item": 48.0, "video_tokens_max": 64, "video_token_rows": 2}
    processor_inputs(processor, [build_messages(record)], [video], cfg)
    assert meter.counts == [64, 32]  # closed meters stop counting
