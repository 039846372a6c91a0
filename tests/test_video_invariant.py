"""The run-time video invariant: every forward has as many video features as video placeholders.

Unit checks on hand-made tensors, then a tiny Qwen2.5-VL and a 2-video world: batches from the
project's own collators (sft's, rl's) with the video removed or a wrong grid must raise, where the
bare model runs on silently; training, generation and scoring with the check installed still work.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from helpers_world import TINY_SIZES, VIDEO, make_workspace, trl_params
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.data.selection import select_records
from videoreasoner.training.sft_data import VideoSFTCollator, to_dataset
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.invariant import (
    VideoInputError, VideoInvariant, check_rows_have_video, install_video_invariant, remove_video_invariant,
    video_invariant,
)

VID, IMG = 7, 6
CONFIG = SimpleNamespace(video_token_id=VID, image_token_id=IMG, vision_config=SimpleNamespace(spatial_merge_size=2))


def ids(*rows):
    return torch.tensor(rows)


def video_kwargs(rows, grid):
    grid = torch.tensor(grid)
    return {"input_ids": ids(*rows), "video_grid_thw": grid,
            "pixel_values_videos": torch.zeros(int(grid.prod(-1).sum()), 3)}


# two rows, one video each: 2 and 1 placeholders = grids (2,2,2)/4 = 2 and (1,2,2)/4 = 1
ROWS = [[1, VID, VID, 2, 0], [1, 3, VID, 2, 0]]
GRID = [[2, 2, 2], [1, 2, 2]]


def test_matching_inputs_pass_and_cached_steps_pass():
    hook = VideoInvariant(CONFIG)
    hook.check(video_kwargs(ROWS, GRID))
    hook.check({"input_ids": ids([4], [5]), "video_grid_thw": torch.tensor(GRID)})  # decode step, grid kept
    hook.check({"inputs_embeds": torch.zeros(2, 5, 8)})  # nothing to count
    assert (hook.forwards, hook.with_vision) == (2, 1)


def test_placeholders_without_pixels_raise():
    kwargs = video_kwargs(ROWS, GRID)
    del kwargs["pixel_values_videos"]
    with pytest.raises(VideoInputError, match="3 video placeholder tokens .* but no pixel_values_videos"):
        VideoInvariant(CONFIG).check(kwargs)


def test_a_grid_that_splits_the_same_features_differently_raises():
    """Same total (3 features) as the placeholders, other split per video: Qwen2.5-VL itself accepts this."""
    with pytest.raises(VideoInputError, match=r"placeholders per video \[2, 1\] .* features \[1, 2\]"):
        VideoInvariant(CONFIG).check(video_kwargs(ROWS, [[1, 2, 2], [2, 2, 2]]))


@pytest.mark.parametrize("change, message", [
    (lambda kw: kw.update(pixel_values_videos=torch.zeros(5, 3)), "5 patch rows but video_grid_thw"),
    (lambda kw: kw.pop("video_grid_thw"), "without video_grid_thw"),
    (lambda kw: kw.update(input_ids=ids([1, 2, 3, 2, 0], [1, 3, 3, 2, 0])), r"per video \[\] "),
    (lambda kw: kw.update(video_grid_thw=torch.tensor([[2, 2, 2], [2, 2, 2]]),
                          pixel_values_videos=torch.zeros(16, 3)), "3 placeholder tokens for 4 features"),
])
def test_mismatched_vision_inputs_raise(change, message):
    kwargs = video_kwargs(ROWS, GRID)
    change(kwargs)
    with pytest.raises(VideoInputError, match=message):
        VideoInvariant(CONFIG).check(kwargs)


def test_images_are_checked_the_same_way():
    with pytest.raises(VideoInputError, match="image placeholder tokens .* but no pixel_values"):
        VideoInvariant(CONFIG).check({"input_ids": ids([1, IMG, 2])})


def test_rows_without_a_video_are_named():
    check_rows_have_video(ids(*ROWS), VID, ["a", "b"], "sft batch")
    with pytest.raises(VideoInputError, match=r"sft batch: 1 of 2 rows .*field 'video' of b \(b.mp4\)"):
        check_rows_have_video(ids(ROWS[0], [1, 3, 3, 2, 0]), VID, ["a", "b (b.mp4)"], "sft batch")


# ---- on a tiny Qwen2.5-VL ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 2-video workspace, a tiny model saved as models/sft, and its first 4 reasoning records."""
    from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny

    root = make_workspace(tmp_path_factory.mktemp("invariant"), videos={"train": 2})
    records = select_records(read_jsonl(root / "data/validated/train.jsonl"), "reasoning")[:4]
    built, processor = build_tiny(TinyConfig(**TINY_SIZES), records, VideoConfig.from_params(VIDEO))
    assert video_invariant(built) is not None  # the tiny model is built, not loaded: installed there too
    save_model_and_processor(built, processor, root / "models/sft")
    model, processor = load_model_and_processor(root / "models/sft")
    return SimpleNamespace(root=root, records=records, model=model, processor=processor,
                           model_dir=root / "models/sft")


def sft_batch(world):
    collator = VideoSFTCollator(world.processor, VideoConfig.from_params(VIDEO))
    return collator(to_dataset(world.records[:2], world.root).to_list())


def test_loaded_models_check_every_forward_by_default(world):
    hook = video_invariant(world.model)
    assert isinstance(hook, VideoInvariant) and install_video_invariant(world.model) is hook  # installed once
    assert hook.token_ids["video"] == world.processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")


def test_sft_batch_without_its_video_raises_where_the_bare_model_runs_silently(world):
    batch = sft_batch(world)
    with torch.no_grad():
        assert torch.isfinite(world.model(**batch).loss)
        del batch["pixel_values_videos"]
        with pytest.raises(VideoInputError, match="but no pixel_values_videos"):
            world.model(**batch)
        remove_video_invariant(world.model)
        try:  # the silent failure the check exists for: a finite loss from a video-blind forward
            assert torch.isfinite(world.model(**batch).loss)
        finally:
            install_video_invariant(world.model)


def test_sft_batch_with_a_wrong_grid_raises(world):
    batch = sft_batch(world)
    (t, h, w), (t2, h2, w2) = batch["video_grid_thw"].tolist()
    assert (t, h, w) == (t2, h2, w2) and w % 4 == 0
    # the same patches in total (pixel rows and placeholders still agree overall), split 3:1 between the videos
    batch["video_grid_thw"] = torch.tensor([[t, h, w + w // 2], [t, h, w // 2]])
    with torch.no_grad():
        with pytest.raises(VideoInputError, match=r"placeholders per video \[32, 32\] .* features \[48, 16\]"):
            world.model(**batch)
        # Without the 3-D positions (no mm_token_type_ids) the bare model reads the wrong split silently.
        del batch["mm_token_type_ids"]
        remove_video_invariant(world.model)
        try:
            assert torch.isfinite(world.model(**batch).loss)
        finally:
            install_video_invariant(world.model)


def test_rl_prompts_without_their_video_raise(world, tmp_path):
    from test_grpo_video import video_trainer

    trainer = video_trainer(world, tmp_path, beta=0.04, max_steps=1)
    for model in (trainer.model, trainer.ref_model):  # the reference model TRL loads itself is checked too
        assert video_invariant(trainer.accelerator.unwrap_model(model)) is not None
    rows = list(to_dataset_rl(world.records[:2]))
    prompt_ids, fields = trainer.encode_rows(rows, trainer.load_videos(rows))
    width = max(map(len, prompt_ids))
    pad = [width - len(p) for p in prompt_ids]  # left padding, as the trainer generates
    input_ids = torch.tensor([[0] * n + p for n, p in zip(pad, prompt_ids)])
    mask = torch.tensor([[0] * n + [1] * (width - n) for n in pad])
    types = torch.tensor([[0] * n + t for n, t in zip(pad, fields["mm_token_type_ids"])])
    kwargs = dict(input_ids=input_ids, attention_mask=mask, mm_token_type_ids=types,
                  video_grid_thw=fields["video_grid_thw"], second_per_grid_ts=fields["second_per_grid_ts"])
    with torch.no_grad():
        trainer.model(**kwargs, pixel_values_videos=fields["pixel_values_videos"])
        with pytest.raises(VideoInputError, match="but no pixel_values_videos"):
            trainer.model(**kwargs)
        with pytest.raises(VideoInputError, match="but no pixel_values_videos"):
            trainer.ref_model(**kwargs)


def to_dataset_rl(records):
    from stages.rl import to_dataset

    return to_dataset(records)


def test_a_grpo_loss_forward_that_drops_the_video_raises(world, tmp_path, monkeypatch):
    """The stock-TRL failure, reproduced inside VideoGRPOTrainer: the log-prob forwards lose the pixels."""
    from videoreasoner.training import grpo_video
    from test_grpo_video import video_trainer

    merge = grpo_video.merge_video_rows
    monkeypatch.setattr(grpo_video, "merge_video_rows", lambda rows, device: {
        k: v for k, v in merge(rows, device).items() if k != "pixel_values_videos"})
    trainer = video_trainer(world, tmp_path, beta=0.0, max_steps=1)
    with pytest.raises(VideoInputError, match="but no pixel_values_videos"):
        trainer.train()


def test_sft_step_grpo_step_and_generation_pass_with_the_check(world, tmp_path):
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.training.sft_trainer import train
    from test_grpo_video import video_trainer

    model, processor = load_model_and_processor(world.model_dir)
    _, summary = train(model, processor, world.records, world.root, trl_params(1), VideoConfig.from_params(VIDEO),
                       tmp_path / "ckpt", "test")
    hook = video_invariant(model)
    assert summary["steps"] == 1 and hook.with_vision >= 1
    trainer = video_trainer(world, tmp_path / "rl", beta=0.04, max_steps=1)
    trainer.train()
    policy = video_invariant(trainer.accelerator.unwrap_model(trainer.model))
    reference = video_invariant(trainer.accelerator.unwrap_model(trainer.ref_model))
    # generation's prefill, the old/policy log-prob forward, and the reference forward all carried video
    assert policy.with_vision >= 2 and reference.with_vision >= 1
    assert policy.forwards > policy.with_vision  # cached decoding steps: no placeholders, checked and passed


def without_video_block(messages):
    return [{**m, "content": [b for b in m["content"] if b.get("type") != "video"]} for m in messages]


def test_collated_rows_built_without_their_video_are_named(world, tmp_path):
    """A prompt that lost its video block while its clip is still decoded: the processor then returns a
    text-only batch (no placeholders, no pixels) that every forward would accept. Each collator names the row."""
    from test_grpo_video import video_trainer

    collator = VideoSFTCollator(world.processor, VideoConfig.from_params(VIDEO))
    (row,) = to_dataset(world.records[:1], world.root).to_list()
    clip = collator.video(row["messages"][0]["content"][0]["video"])
    with pytest.raises(VideoInputError, match=f"sft batch: 1 of 1 rows .*{clip.path}"):
        collator([{**row, "messages": without_video_block(row["messages"])}], videos=[clip])
    trainer = video_trainer(world, tmp_path, beta=0.0, max_steps=1)
    (prompt,) = to_dataset_rl(world.records[:1])
    videos = trainer.load_videos([prompt])
    prompt["prompt"] = without_video_block(prompt["prompt"])
    with pytest.raises(VideoInputError, match=f"rl prompts: 1 of 1 rows .*{world.records[0]['id']}"):
        trainer.encode_rows([prompt], videos)
