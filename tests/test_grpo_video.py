"""VideoGRPOTrainer carries each row's video into every log-prob forward; the stock trainer does not.

A forward pre-hook on the policy (and reference) model records the keyword arguments of every
log-prob forward (the ones TRL calls with `labels`): the policy loss, the reference and the
adapter-disabled reference forwards. Tiny model, 2 GRPO steps, 2 generations of 8 tokens.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers_world import TINY_SIZES, VIDEO, make_workspace
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.training.grpo_video import VISION_TOKENS, VideoGRPOTrainer, merge_video_rows, split_video_rows
from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
from stages.rl import to_dataset
from videoreasoner.training.rewards import build_rewards
from videoreasoner.data.selection import select_records
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import build_messages, sample_video, user_text
from videoreasoner.video.invariant import VideoInputError, remove_video_invariant

REWARDS = [{"name": "format", "weight": 0.5, "kwargs": {}}, {"name": "accuracy", "weight": 1.0, "kwargs": {}}]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 2-video workspace and a tiny model saved as models/sft; first 8 reasoning records."""
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny

    root = make_workspace(tmp_path_factory.mktemp("grpo"), videos={"train": 2})
    records = select_records(read_jsonl(root / "data/validated/train.jsonl"), "reasoning")[:8]
    model, processor = build_tiny(TinyConfig(**TINY_SIZES), records, VideoConfig.from_params(VIDEO))
    save_model_and_processor(model, processor, root / "models/sft")
    return SimpleNamespace(root=root, records=records, model_dir=root / "models/sft")


def grpo_args(tmp: Path, **overrides):
    from trl import GRPOConfig

    values = dict(output_dir=str(tmp), per_device_train_batch_size=2, num_generations=2, max_completion_length=8,
                  max_steps=2, learning_rate=1e-3, bf16=False, fp16=False, activation_checkpointing=False,
                  beta=0.04, loss_type="grpo", report_to="none", use_cpu=True, logging_steps=1,
                  save_strategy="no", seed=0, disable_tqdm=True, reward_weights=[0.5, 1.0])
    values.update(overrides)
    return GRPOConfig(**values)


def record_logprob_forwards(module: torch.nn.Module, calls: list[dict]) -> None:
    """Append the kwargs of every forward called with `labels` (TRL's log-prob forwards) to `calls`."""
    def hook(_module, _args, kwargs):
        if "labels" in kwargs:
            calls.append({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
    module.register_forward_pre_hook(hook, with_kwargs=True)


def stock_trainer(world, tmp, invariant: bool = False):
    """The stock GRPOTrainer on prompts that embed the decoded frames (what it can load here); without
    the run-time video invariant unless `invariant` (with it, the drop is an error, not a recording)."""
    from datasets import Dataset, Features, Image, List, Value
    from PIL import Image as PILImage
    from trl import GRPOTrainer

    video_cfg = VideoConfig.from_params(VIDEO)
    rows = []
    for r in world.records:
        frames = sample_video(world.root / r["video"], video_cfg).frames
        prompt = build_messages(r, [PILImage.fromarray(f) for f in frames], with_target=False)
        for block in prompt[0]["content"]:
            block.setdefault("text", None)
        rows.append({"prompt": prompt, "problem_type": r["problem_type"], "answer_json": json.dumps(r["answer"]),
                     "options": r.get("options")})
    block = {"type": Value("string"), "video": List(Image()), "text": Value("string")}
    features = Features({"prompt": List({"role": Value("string"), "content": List(block)}),
                         "problem_type": Value("string"), "answer_json": Value("string"),
                         "options": List(Value("string"))})
    model, processor = load_model_and_processor(world.model_dir)
    if not invariant:
        remove_video_invariant(model)
    funcs, _ = build_rewards(REWARDS)
    return GRPOTrainer(model=model, reward_funcs=funcs, args=grpo_args(tmp), processing_class=processor,
                       train_dataset=Dataset.from_list(rows, features=features))


def video_trainer(world, tmp, trainer_cls=VideoGRPOTrainer, peft_config=None, **overrides):
    model, processor = load_model_and_processor(world.model_dir)
    funcs, _ = build_rewards(REWARDS)
    return trainer_cls(model=model, reward_funcs=funcs, args=grpo_args(tmp, **overrides),
                       processing_class=processor, train_dataset=to_dataset(world.records),
                       video_config=VideoConfig.from_params(VIDEO), video_root=world.root, peft_config=peft_config)


def assert_video_in_every_forward(calls: list[dict], video_token_id: int) -> None:
    assert calls, "no log-prob forward was recorded"
    for kwargs in calls:
        assert "pixel_values_videos" in kwargs, "a log-prob forward ran without the video"
        grid = kwargs["video_grid_thw"]
        ids = kwargs["input_ids"]
        assert grid.shape[0] == ids.shape[0] == kwargs["second_per_grid_ts"].shape[0]
        assert kwargs["pixel_values_videos"].shape[0] == int(grid.prod(-1).sum())
        # one video per row, its placeholder count equals its merged patches (merge 2x2)
        assert ((ids == video_token_id).sum(-1) == grid.prod(-1) // 4).all()
        assert (kwargs["mm_token_type_ids"] == 2).sum() == (ids == video_token_id).sum()


@pytest.mark.parametrize("build", [
    pytest.param(stock_trainer, id="stock-trl", marks=pytest.mark.xfail(
        strict=True, reason="TRL 1.16 GRPOTrainer drops the video tensors in its log-prob forwards")),
    pytest.param(video_trainer, id="video-grpo"),
])
def test_policy_and_reference_forwards_receive_the_video(world, tmp_path, build):
    trainer = build(world, tmp_path)
    calls: list[dict] = []
    record_logprob_forwards(trainer.model, calls)
    assert trainer.ref_model is not None  # beta > 0: a separate reference model
    ref_calls: list[dict] = []
    record_logprob_forwards(trainer.ref_model, ref_calls)
    trainer.train()
    video_id = trainer.processing_class.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert len(calls) == 2 and len(ref_calls) == 2  # one policy-loss and one reference forward per step
    assert_video_in_every_forward(calls, video_id)
    assert_video_in_every_forward(ref_calls, video_id)


def test_stock_trainer_dropping_the_video_is_an_error_with_the_invariant(world, tmp_path):
    """The model loaded through model_io checks its forwards: stock TRL's video-blind loss forward raises."""
    trainer = stock_trainer(world, tmp_path, invariant=True)
    with pytest.raises(VideoInputError, match="but no pixel_values_videos"):
        trainer.train()


def test_adapter_disabled_reference_forward_receives_the_video(world, tmp_path):
    from peft import LoraConfig

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = video_trainer(world, tmp_path, peft_config=lora, max_steps=1)
    assert trainer.ref_model is None  # the reference is the model with its adapter disabled
    calls: list[dict] = []
    record_logprob_forwards(trainer.model, calls)
    trainer.train()
    assert len(calls) == 2  # reference (adapter off) + policy
    assert_video_in_every_forward(calls, trainer.processing_class.tokenizer.convert_tokens_to_ids("<|video_pad|>"))


def test_each_row_keeps_its_own_video_through_shuffle_and_split(world, tmp_path):
    """Frames painted with a per-record grey level; every loss row must show its own record's level."""
    trainer = video_trainer(world, tmp_path, beta=0.0, steps_per_generation=2, gradient_accumulation_steps=2)
    level = {r["id"]: 20 * (k + 1) for k, r in enumerate(world.records)}
    load = trainer.load_videos
    trainer.load_videos = lambda rows: [v.with_frames(np.full_like(v.frames, level[row["id"]]))
                                        for row, v in zip(rows, load(rows))]
    question = {r["id"]: user_text(r) for r in world.records}
    calls: list[dict] = []
    record_logprob_forwards(trainer.model, calls)
    trainer.train()
    tokenizer = trainer.processing_class.tokenizer
    mean, std = trainer.processing_class.video_processor.image_mean[0], trainer.processing_class.video_processor.image_std[0]
    checked = 0
    for kwargs in calls:
        for row, video in zip(kwargs["input_ids"], split_video_rows(kwargs)):
            channel0 = video["pixel_values_videos"].view(-1, 3, 2 * 14 * 14)[:, 0].mean().item()
            grey = round((channel0 * std + mean) * 255)
            (rid,) = [i for i, g in level.items() if abs(g - grey) <= 3]
            assert question[rid] in tokenizer.decode(row), f"row shows record {rid}'s video with another prompt"
            checked += 1
    assert checked == 2 * 2 * 2  # 2 steps x 2 micro-batches x 2 rows


def test_generation_never_samples_vision_tokens(world, tmp_path):
    trainer = video_trainer(world, tmp_path, beta=0.0, max_steps=1)
    tokenizer = trainer.processing_class.tokenizer
    vision = [tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS]
    assert set(vision) <= set(trainer.generation_config.suppress_tokens)
    # Make the vision tokens overwhelmingly likely: only the suppression keeps them out.
    trainer.model.lm_head.register_forward_hook(lambda _m, _a, out: out.index_add(
        -1, torch.tensor(vision), torch.full((*out.shape[:-1], len(vision)), 1e4)))
    sampled: list[list[int]] = []
    generate = trainer._generate_single_turn

    def spy(*args, **kwargs):
        ids, logprobs = generate(*args, **kwargs)
        sampled.extend(ids)
        return ids, logprobs
    trainer._generate_single_turn = spy
    trainer.train()
    assert sampled and not any(t in vision for ids in sampled for t in ids)


def test_split_and_merge_video_rows_round_trip():
    grid = torch.tensor([[2, 4, 4], [2, 2, 4]])
    batch = {"pixel_values_videos": torch.randn(48, 5), "video_grid_thw": grid,
             "second_per_grid_ts": torch.tensor([2.0, 4.0])}
    rows = split_video_rows(batch)
    assert [r["pixel_values_videos"].shape[0] for r in rows] == [32, 16]
    merged = merge_video_rows(rows, "cpu")
    assert all(torch.equal(merged[k], batch[k]) for k in batch)


def test_zero_variance_groups_leave_the_loss():
    fake = SimpleNamespace(num_generations=2, model=SimpleNamespace(training=True),
                           accelerator=SimpleNamespace(gather=lambda t: t.reshape(1)),
                           _metrics={"train": {"frac_groups_skipped": []}})
    output = {"advantages": torch.tensor([0.0, 0.0, 0.7, -0.7]), "completion_mask": torch.ones(4, 3, dtype=torch.int)}
    VideoGRPOTrainer._mask_zero_variance_groups(fake, output)
    assert output["completion_mask"].sum(-1).tolist() == [0, 0, 3, 3]
    assert int(output["num_items_in_batch"]) == 6
    assert fake._metrics["train"]["frac_groups_skipped"] == [0.5]
