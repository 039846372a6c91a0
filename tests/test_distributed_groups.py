"""Group statistics with 2 processes equal those of 1 process, when a group's rollouts span the ranks.

The global batch is TRL's layout: 3 groups (a, b, c) of 4 rollouts, rank r holding rows [6r, 6r + 6);
group b's rollouts sit 2 on rank 0 and 2 on rank 1. Each statistic runs on two gloo processes (the
launchers' process group on the CPU) and on one process over the whole batch; the results must be equal.
"""
from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers_ranks import run_ranks
from videoreasoner.training.grpo_video import VideoGRPOTrainer, local_slice, world
from videoreasoner.training.rewards import build_rewards
from videoreasoner.training.temporal_contrast import (
    TemporalContrastConfig, TemporalContrastGRPOTrainer, task_rewards, temporal_contrast_reward,
)

G, PER_RANK = 4, 6
IDS = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
REWARDS = [{"name": "format", "weight": 0.5, "kwargs": {}}, {"name": "accuracy", "weight": 1.0, "kwargs": {}}]
RIGHT, WRONG = "<think>look</think><answer>B</answer>", "<think>look</think><answer>C</answer>"
# b's rank-0 half alone looks flat (zeros) and all right; only the whole group tells otherwise.
ADVANTAGES = [0.0] * 4 + [0.0, 0.0, 0.5, -0.5] + [0.0] * 4
ANSWERS = [RIGHT] * 4 + [RIGHT, RIGHT, WRONG, WRONG] + [RIGHT, WRONG, WRONG, WRONG]
SHUFFLED = [0.5] * 4 + [0.7] * 4 + [0.0] * 4  # b: ordered 0.5 <= 0.8 * 0.7 (no bonus); its rank-0 half 1.0 would earn


def rows_here(values: list, n_local: int = PER_RANK) -> list:
    """This process's rows: all of them on one process, its slice of the global batch on several."""
    return values if world()[1] == 1 else values[local_slice(n_local)]


def columns(ids: list) -> dict:
    n = len(ids)
    return {"id": ids, "problem_type": ["multiple_choice"] * n, "answer_json": ['"B"'] * n,
            "options": [["red", "green", "blue", "white"]] * n}


def zero_variance_case():
    from videoreasoner.training.grpo_video import gather_rows

    fake = SimpleNamespace(num_generations=G, model=SimpleNamespace(training=True),
                           accelerator=SimpleNamespace(gather=lambda t: gather_rows(t.reshape(1))),
                           _metrics={"train": {"frac_groups_skipped": []}})
    adv = torch.tensor(rows_here(ADVANTAGES))
    output = {"advantages": adv, "completion_mask": torch.ones(len(adv), 3, dtype=torch.int)}
    VideoGRPOTrainer._mask_zero_variance_groups(fake, output)
    return (output["completion_mask"].sum(-1).tolist(), int(output["num_items_in_batch"]),
            fake._metrics["train"]["frac_groups_skipped"])


def contrast_bonus_case():
    funcs, _ = build_rewards(REWARDS)
    reward = temporal_contrast_reward(funcs, TemporalContrastConfig(enabled=True, alpha=0.3, mu=0.8))
    ids = rows_here(IDS)
    return reward(rows_here(ANSWERS), **columns(ids), shuffled_accuracy=rows_here(SHUFFLED))


class FakeVideo:
    def __init__(self, frames):
        self.frames = frames

    def with_frames(self, frames):
        return FakeVideo(frames)


def shuffled_accuracy_case():
    """The trainer's shuffled rollouts with a stand-in policy whose answer on shuffled frames is the
    row's `right_when_shuffled`; returns the group accuracies and each row's frame order."""
    funcs, _ = build_rewards(REWARDS)
    orders = []

    def encode_rows(rows, videos):
        orders.extend(v.frames.tolist() for v in videos)
        return [[int(r["right_when_shuffled"])] for r in rows], {}

    fake = SimpleNamespace(
        load_videos=lambda rows: [FakeVideo(np.arange(8)) for _ in rows], encode_rows=encode_rows,
        _generate_single_turn=lambda ids, _images, _fields, _n: (ids, None),
        _tokenizer=SimpleNamespace(batch_decode=lambda ids, **_: [RIGHT if i[0] else WRONG for i in ids]),
        _task_funcs=task_rewards(funcs), temporal_contrast=TemporalContrastConfig(enabled=True),
        num_generations=G, state=SimpleNamespace(global_step=3), _metrics={"train": defaultdict(list)})
    ids = rows_here(IDS)
    rights = rows_here([a == RIGHT for a in ANSWERS])
    inputs = [{**{k: v[i] for k, v in columns(ids).items()}, "prompt": "q", "right_when_shuffled": r}
              for i, r in enumerate(rights)]
    accuracy = TemporalContrastGRPOTrainer._shuffled_accuracy(fake, inputs)
    return accuracy, orders, fake._metrics["train"]["temporal_contrast/shuffled_accuracy"]


def all_cases():
    return {"zero_variance": zero_variance_case(), "bonus": contrast_bonus_case(),
            "shuffled": shuffled_accuracy_case()}


@pytest.fixture(scope="module")
def two_ranks():
    """Every case on one 2-process group (one start of the processes for the whole module)."""
    ranks = run_ranks(all_cases, 2)
    return {name: [rank[name] for rank in ranks] for name in ranks[0]}


def test_zero_variance_filter_sees_whole_groups(two_ranks):
    one = zero_variance_case()
    assert one[:2] == ([0] * 4 + [3] * 4 + [0] * 4, 12) and one[2] == [torch.tensor(2 / 3).item()]
    two = two_ranks["zero_variance"]
    assert two[0][0] + two[1][0] == one[0]
    assert [r[1:] for r in two] == [one[1:], one[1:]]


def test_temporal_contrast_bonus_counts_the_whole_group(two_ranks):
    one = contrast_bonus_case()
    assert one == [0.3] * 4 + [0.0] * 4 + [0.3, 0.0, 0.0, 0.0]
    two = two_ranks["bonus"]
    assert two[0] + two[1] == one


def test_shuffled_accuracy_and_frame_order_are_per_group_on_every_rank(two_ranks):
    one = shuffled_accuracy_case()
    assert one[0] == {"a": 1.0, "b": 0.5, "c": 0.25}
    two = two_ranks["shuffled"]
    assert [r[0] for r in two] == [one[0], one[0]] and [r[2] for r in two] == [one[2], one[2]]
    orders = two[0][1] + two[1][1]
    assert orders == one[1]
    assert orders[4:8] == [orders[4]] * 4 and orders[4] != list(range(8))  # b: one permutation across ranks
