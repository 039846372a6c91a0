"""T-GRPO: the bonus rule on hand-made groups, and the trainer's shuffled rollouts on a tiny model."""
from __future__ import annotations

import random
import numpy as np
import pytest

from videoreasoner.training.rewards import build_rewards
from videoreasoner.training.temporal_contrast import (
    TemporalContrastConfig, group_accuracy, shuffled_order, task_rewards, temporal_contrast_reward,
)

REWARDS = [{"name": "format", "weight": 0.5, "kwargs": {}}, {"name": "accuracy", "weight": 1.0, "kwargs": {}}]
RIGHT, WRONG = "<think>look</think><answer>B</answer>", "<think>look</think><answer>C</answer>"


def columns(ids, shuffled):
    n = len(ids)
    return {"id": ids, "problem_type": ["multiple_choice"] * n, "answer_json": ['"B"'] * n,
            "options": [["red", "green", "blue", "white"]] * n, "shuffled_accuracy": shuffled}


def bonus(completions, **cols):
    funcs, _ = build_rewards(REWARDS)
    return temporal_contrast_reward(funcs, TemporalContrastConfig(enabled=True, alpha=0.3, mu=0.8))(completions, **cols)


def test_correct_ordered_answers_earn_alpha_when_order_helps():
    # group a: ordered 2/2 correct vs shuffled 0.5 -> 1.0 > 0.4: both correct rollouts earn 0.3
    # group b: ordered 1/2 correct vs shuffled 1.0 -> 0.5 <= 0.8: nobody earns
    out = bonus([RIGHT, RIGHT, RIGHT, WRONG], **columns(["a", "a", "b", "b"], [0.5, 0.5, 1.0, 1.0]))
    assert out == [0.3, 0.3, 0.0, 0.0]


def test_wrong_answers_never_earn_and_the_condition_is_strict():
    out = bonus([RIGHT, WRONG], **columns(["a", "a"], [0.0, 0.0]))
    assert out == [0.3, 0.0]
    assert bonus([WRONG, WRONG], **columns(["a", "a"], [0.0, 0.0])) == [0.0, 0.0]  # 0 > 0.8 * 0 is false


def test_no_bonus_without_shuffled_rollouts_or_for_uncovered_types():
    assert bonus([RIGHT], **{**columns(["a"], [0.0]), "shuffled_accuracy": None}) == [None]
    funcs, _ = build_rewards([{"name": "accuracy", "weight": 1.0, "kwargs": {"types": ["numerical"]}}])
    reward = temporal_contrast_reward(funcs, TemporalContrastConfig(enabled=True))
    assert reward([RIGHT], **columns(["a"], [0.0])) == [None]


def test_needs_a_task_reward():
    funcs, _ = build_rewards([{"name": "format", "weight": 1.0, "kwargs": {}}])
    with pytest.raises(ValueError, match="task reward"):
        task_rewards(funcs)


def test_group_accuracy_and_shuffled_order():
    assert group_accuracy(["a", "a", "b", "b"], [True, False, None, True]) == {"a": 0.5, "b": 1.0}
    rng = random.Random(0)
    for n in (2, 4, 8):
        for _ in range(20):
            order = shuffled_order(n, rng)
            assert sorted(order) == list(range(n)) and order != list(range(n))


def test_config_from_params():
    assert TemporalContrastConfig.from_params(True).enabled
    assert not TemporalContrastConfig.from_params(None).enabled
    assert TemporalContrastConfig.from_params({"enabled": True, "alpha": 0.5}).alpha == 0.5
    with pytest.raises(ValueError, match="unknown key 'beta'"):
        TemporalContrastConfig.from_params({"beta": 1})


def test_trainer_scores_rollouts_on_shuffled_frames(tmp_path):
    """The shuffled pass encodes permuted frames and turns its verdicts into per-group accuracy."""
    from helpers_world import TINY_SIZES, VIDEO, make_workspace
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
    from stages.rl import to_dataset
    from videoreasoner.data.selection import select_records
    from videoreasoner.training.temporal_contrast import TemporalContrastGRPOTrainer
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig
    from trl import GRPOConfig

    root = make_workspace(tmp_path, videos={"train": 1})
    records = [r for r in select_records(read_jsonl(root / "data/validated/train.jsonl"), "reasoning")
               if r["problem_type"] == "multiple_choice"][:2]
    video_cfg = VideoConfig.from_params(VIDEO)
    save_model_and_processor(*build_tiny(TinyConfig(**TINY_SIZES), records, video_cfg), root / "models/sft")
    model, processor = load_model_and_processor(root / "models/sft")
    funcs, weights = build_rewards(REWARDS)
    contrast = TemporalContrastConfig(enabled=True)
    funcs.append(temporal_contrast_reward(funcs, contrast))
    args = GRPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=8, max_steps=1, bf16=False, fp16=False, activation_checkpointing=False,
                      beta=0.0, loss_type="grpo", report_to="none", use_cpu=True, seed=0, disable_tqdm=True,
                      save_strategy="no", reward_weights=[*weights, 1.0])
    trainer = TemporalContrastGRPOTrainer(model=model, reward_funcs=funcs, args=args, processing_class=processor,
                                          train_dataset=to_dataset(records), video_config=video_cfg,
                                          video_root=root, temporal_contrast=contrast)
    encoded, answers = [], iter([RIGHT, WRONG])
    encode = trainer.encode_rows
    trainer.encode_rows = lambda rows, videos: encoded.append(videos) or encode(rows, videos)
    rows = [dict(r) for r in to_dataset(records).select([0, 0])]  # one group of 2 rollouts
    trainer._generate_single_turn = lambda prompt_ids, *a, **k: (
        [trainer._tokenizer.encode(next(answers)) for _ in prompt_ids], None)
    accuracy = trainer._shuffled_accuracy(rows)
    ordered = trainer.load_videos(rows)[0].frames
    shuffled = encoded[0][0].frames
    assert not np.array_equal(shuffled, ordered)
    assert sorted(map(bytes, shuffled)) == sorted(map(bytes, ordered))  # same frames, other order
    expected = sum(letter == records[0]["answer"] for letter in "BC") / 2
    assert accuracy == {records[0]["id"]: expected}
    assert trainer._metrics["train"]["temporal_contrast/shuffled_accuracy"] == [expected]
