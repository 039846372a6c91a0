"""One video-input path: frame sampling, real timestamps, and the fps the processor sees."""
import numpy as np
import pytest

from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import (
    build_messages, num_frames, processor_inputs, sample_indices, sample_video,
)
from tests.helpers_world import make_workspace


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = make_workspace(tmp_path_factory.mktemp("world"), videos={"train": 1, "val": 1})
    from videoreasoner.core.atomic import read_jsonl

    return root, read_jsonl(root / "data/validated/train.jsonl")


@pytest.fixture(scope="module")
def processor(world):
    from videoreasoner.training.tiny_model import build_processor, train_tokenizer, corpus_texts

    _, records = world
    return build_processor(train_tokenizer(corpus_texts(records), 400), VideoConfig())


@pytest.mark.parametrize("n_file, fps, cfg, expected", [
    (32, 4.0, VideoConfig(fps=1.0, max_frames=8), 8),      # 8 s at 1 fps
    (32, 4.0, VideoConfig(fps=2.0, max_frames=8), 8),      # capped by max_frames
    (8, 4.0, VideoConfig(fps=1.0, min_frames=4), 4),       # 2 s: raised to min_frames
    (32, 4.0, VideoConfig(fps=0.7, max_frames=16), 6),     # 5.6 -> 6, a multiple of 2
    (3, 4.0, VideoConfig(fps=1.0, min_frames=4), 2),       # never more frames than the file has
])
def test_frame_count_is_clamped_and_a_multiple_of_the_temporal_patch(n_file, fps, cfg, expected):
    assert num_frames(n_file, fps, cfg) == expected
    indices = sample_indices(n_file, fps, cfg)
    assert len(indices) == expected and indices == sorted(set(indices)) and indices[-1] < n_file
    # the centres of equal segments: as much of the clip before the first frame as after the last
    assert abs(indices[0] - (n_file - 1 - indices[-1])) <= 1


@pytest.mark.parametrize("n_file, fps, n", [(132, 25.0, 4), (32, 4.0, 4), (5, 1.0, 4), (60, 1.0, 8)])
def test_uniform_frames_reach_the_end_of_the_clip(n_file, fps, n):
    """Issue 14.4: 4 frames of a 5.28-s, 25-fps clip were taken at 0, 1.32, 2.64, 3.96 s, never
    looking at the last 1.32 s. Now the gap after the last frame is no larger than between frames, and
    no instant lies farther from a kept frame than half that spacing (plus one file frame)."""
    cfg = VideoConfig(fps=n * fps / n_file, min_frames=n, max_frames=n)
    times = [i / fps for i in sample_indices(n_file, fps, cfg)]
    gaps, end_gap = np.diff(times), n_file / fps - times[-1]
    assert len(times) == n and end_gap <= gaps.min() + 1e-9
    assert max(times[0], end_gap) <= gaps.max() / 2 + 1 / fps + 1e-9


def test_the_5_28_s_clip_is_sampled_at_segment_centres():
    times = [i / 25.0 for i in sample_indices(132, 25.0, VideoConfig(fps=4 / 5.28, min_frames=4, max_frames=4))]
    assert times == pytest.approx([0.64, 1.96, 3.28, 4.6])


def test_unknown_video_params_are_rejected():
    with pytest.raises(ValueError, match="unknown key 'fpss'"):
        VideoConfig.from_params({"fpss": 1})
    with pytest.raises(ValueError, match="sampler"):
        VideoConfig.from_params({"sampler": "random"})


def test_sampled_clip_carries_real_timestamps_and_fps(world):
    root, records = world
    clip = sample_video(root / records[0]["video"], VideoConfig(fps=1.0, max_frames=8))
    assert clip.frames.shape == (8, 112, 112, 3) and clip.frames.dtype == np.uint8
    assert clip.file_fps == 4.0 and clip.n_file_frames == 32
    assert clip.timestamps == tuple(i / 4.0 for i in clip.indices) == (0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5)
    assert clip.sampled_fps == pytest.approx(1.0)
    assert clip.metadata()["fps"] == clip.sampled_fps


@pytest.mark.parametrize("fps, max_frames", [(1.0, 8), (0.5, 8), (2.0, 16)])
def test_second_per_grid_ts_is_temporal_patch_over_sampled_fps(world, processor, fps, max_frames):
    root, records = world
    cfg = VideoConfig(fps=fps, max_frames=max_frames)
    clip = sample_video(root / records[0]["video"], cfg)
    batch = processor_inputs(processor, [build_messages(records[0])], [clip], cfg)
    assert float(batch["second_per_grid_ts"][0]) == pytest.approx(2 / clip.sampled_fps)
    assert clip.sampled_fps == pytest.approx(len(clip.indices) / 8.0)  # 8-s clips
    t, h, w = batch["video_grid_thw"][0].tolist()
    assert (t, h, w) == (len(clip.indices) // 2, 8, 8)  # 112 px frames stay 112 px (8 patches of 14)
    n_video_tokens = int((batch["input_ids"][0] == processor.video_token_id).sum())
    assert n_video_tokens == t * h * w // 4


def test_assistant_mask_covers_exactly_the_target_and_its_end_token(world, processor):
    from videoreasoner.video.inputs import assistant_text

    root, records = world
    record = records[0]
    clip = sample_video(root / record["video"], VideoConfig())
    batch = processor_inputs(processor, [build_messages(record)], [clip], VideoConfig(), assistant_mask=True)
    ids = batch["input_ids"][0][batch["assistant_masks"][0].bool()]
    assert processor.tokenizer.decode(ids) == assistant_text(record) + "<|im_end|>"
    prompt_only = processor_inputs(processor, [build_messages(record, with_target=False)], [clip],
                                   VideoConfig(), add_generation_prompt=True)
    text = processor.tokenizer.decode(prompt_only["input_ids"][0])
    assert text.endswith("<|im_start|>assistant\n") and record["question"] in text
