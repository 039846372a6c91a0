"""T-GRPO (Video-R1's temporal contrast): pay for answers that need the frames in their order.

For each question the policy also answers the same video with its frames shuffled. Let p be the
fraction of correct answers among the ordered rollouts of a group and p̃ the fraction among the
shuffled ones. When p > mu · p̃, every *correct* ordered rollout earns `alpha` on top of its other
rewards; otherwise nobody does. Shuffled rollouts are only scored, never trained on.

Correctness comes from the task rewards of the registry (accuracy, temporal_iou, box_iou, tube_iou:
the same verifiers as evaluation): a score >= correct_threshold counts as correct. Differences from
Video-R1, on purpose: the condition is strict (p > mu·p̃, so a group with no correct answer earns
nothing either way), one shuffled rollout per ordered rollout, and each sample is scored with its own
problem type. The bonus is a TRL reward function ("temporal_contrast"), so it is logged as its own
reward component and weighted like the others.
"""
from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from videoreasoner.core.params import read_section
from videoreasoner.training.grpo_video import VideoGRPOTrainer, gather_objects
from videoreasoner.training.rewards import TASK_REWARDS

log = logging.getLogger(__name__)
RewardFn = Callable[..., list[float | None]]
REWARD_NAME = "temporal_contrast"


@dataclass(frozen=True)
class TemporalContrastConfig:
    """params `rl.temporal_contrast`. alpha: bonus in reward units; mu: required ratio of ordered to
    shuffled accuracy (fractions in [0, 1]); correct_threshold: task score counted as correct."""

    PARAMS_SECTION: ClassVar[str] = "rl.temporal_contrast"

    enabled: bool = False
    alpha: float = 0.3
    mu: float = 0.8
    correct_threshold: float = 0.5
    seed: int = 1234

    @classmethod
    def from_params(cls, params: dict[str, Any] | bool | None) -> "TemporalContrastConfig":
        if isinstance(params, bool) or params is None:
            return cls(enabled=bool(params))
        return read_section(params, cls)


def task_rewards(funcs: list[RewardFn]) -> list[RewardFn]:
    """The task rewards among built rewards (names may carry a numeric suffix: accuracy_2)."""
    found = [f for f in funcs if re.sub(r"_\d+$", "", f.__name__) in TASK_REWARDS]
    if not found:
        raise ValueError(f"temporal contrast needs a task reward ({', '.join(TASK_REWARDS)}) in params rewards")
    return found


def task_scores(funcs: list[RewardFn], completions: list, columns: dict[str, Any]) -> list[float | None]:
    """Each sample's task score: the one task reward that covers its problem type (None if none does)."""
    scores: list[float | None] = [None] * len(completions)
    for func in funcs:
        for i, value in enumerate(func(completions, **columns)):
            if value is not None and scores[i] is None:
                scores[i] = float(value)
    return scores


def group_accuracy(keys: list[Any], correct: list[bool | None]) -> dict[Any, float]:
    """Fraction of correct samples per group key (samples with no verdict are left out)."""
    hits: dict[Any, list[bool]] = defaultdict(list)
    for key, ok in zip(keys, correct):
        if ok is not None:
            hits[key].append(ok)
    return {key: float(np.mean(v)) for key, v in hits.items() if v}


def shuffled_order(n_frames: int, rng: random.Random) -> list[int]:
    """A random frame order that differs from the original (for n_frames >= 2)."""
    order = list(range(n_frames))
    while n_frames >= 2 and order == sorted(order):
        rng.shuffle(order)
    return order


def group_frame_order(seed: int, step: int, group: Any, n_frames: int) -> list[int]:
    """The shuffled frame order of one group at one optimizer step: a function of (seed, step, group
    id) only, so every rank holding rollouts of the group, a one-process run and a resumed run all
    shuffle its frames alike (a per-process random stream would not)."""
    return shuffled_order(n_frames, random.Random(f"{seed}/{step}/{group}"))


def temporal_contrast_reward(funcs: list[RewardFn], cfg: TemporalContrastConfig) -> RewardFn:
    """The bonus reward: alpha for a correct rollout of a group whose ordered accuracy beats mu × its
    shuffled accuracy (column `shuffled_accuracy`, set by TemporalContrastGRPOTrainer), else 0; None
    for samples no task reward covers and when no shuffled accuracy is known (evaluation)."""
    tasks = task_rewards(funcs)

    def temporal_contrast(completions: list, **columns: Any) -> list[float | None]:
        shuffled = columns.get("shuffled_accuracy")
        if shuffled is None:
            return [None] * len(completions)
        scores = task_scores(tasks, completions, columns)
        correct = [None if s is None else s >= cfg.correct_threshold for s in scores]
        keys = columns.get("id") or list(range(len(completions)))
        # A group's rollouts may sit on several ranks: its ordered accuracy counts all of them.
        everywhere = gather_objects(list(zip(keys, correct, shuffled)))
        ordered = group_accuracy([k for k, _, _ in everywhere], [ok for _, ok, _ in everywhere])
        out: list[float | None] = []
        for key, ok, p_shuffled in zip(keys, correct, shuffled):
            if ok is None or p_shuffled is None:
                out.append(None)
            else:
                out.append(cfg.alpha if ok and ordered[key] > cfg.mu * p_shuffled else 0.0)
        if callable(columns.get("log_metric")):
            gaps = [ordered[k] - s for k, _, s in everywhere if k in ordered and s is not None]
            if gaps:
                columns["log_metric"]("temporal_contrast/ordered_minus_shuffled", float(np.mean(gaps)))
        return out

    temporal_contrast.__name__ = temporal_contrast.__qualname__ = REWARD_NAME
    return temporal_contrast


class TemporalContrastGRPOTrainer(VideoGRPOTrainer):
    """VideoGRPOTrainer that, before scoring a training batch, rolls out every row once more on its
    video with shuffled frames and stores the group's shuffled accuracy in column `shuffled_accuracy`."""

    def __init__(self, *args, temporal_contrast: TemporalContrastConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.temporal_contrast = temporal_contrast
        self._task_funcs = task_rewards(self.reward_funcs)

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict[str, Any]:
        if self.model.training:
            accuracy = self._shuffled_accuracy(inputs)
            inputs = [{**x, "shuffled_accuracy": accuracy.get(x["id"])} for x in inputs]
        return super()._generate_and_score_completions(inputs)

    @torch.no_grad()
    def _shuffled_accuracy(self, inputs: list[dict]) -> dict[Any, float]:
        """Group id -> fraction of correct answers on shuffled frames over the group's rollouts on every
        rank (one permutation per group and step, the same on every rank: group_frame_order)."""
        videos = self.load_videos(inputs)
        shuffled = []
        for row, video in zip(inputs, videos):
            order = group_frame_order(self.temporal_contrast.seed, self.state.global_step, row["id"],
                                      len(video.frames))
            shuffled.append(video.with_frames(video.frames[order]))
        prompt_ids, fields_ = self.encode_rows(inputs, shuffled)
        completion_ids, _ = self._generate_single_turn(prompt_ids, None, fields_, self.num_generations)
        texts = self._tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        completions = [[{"role": "assistant", "content": text}] for text in texts]
        columns = {k: [row.get(k) for row in inputs] for k in inputs[0] if k != "prompt"}
        scores = task_scores(self._task_funcs, completions, columns)
        correct = [None if s is None else s >= self.temporal_contrast.correct_threshold for s in scores]
        everywhere = gather_objects([(row["id"], ok) for row, ok in zip(inputs, correct)])
        accuracy = group_accuracy([k for k, _ in everywhere], [ok for _, ok in everywhere])
        if accuracy:
            self._metrics["train"]["temporal_contrast/shuffled_accuracy"].append(float(np.mean(list(accuracy.values()))))
        return accuracy
