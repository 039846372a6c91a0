"""Every rank of a training job reads the same items: the stages' run-time check
(`videoreasoner.training.checkpoints.same_data_callback`), run on two gloo processes as the launchers
start them. Ranks that read different records fail, each naming every rank's digest."""
from __future__ import annotations

import pytest

from helpers_ranks import run_ranks
from videoreasoner.training.checkpoints import items_digest, same_data_callback

RECORDS = [{"id": "synthetic:1", "video": "v1.mp4", "answer": "B"}, {"id": "synthetic:2", "video": "v2.mp4", "answer": "3"}]


def check_case(records_by_rank: list[list[dict]]) -> str:
    import torch.distributed as dist

    same_data_callback(records_by_rank[dist.get_rank()], "records of train.jsonl").on_train_begin(None, None, None)
    return "checked"


def test_ranks_reading_the_same_records_pass():
    assert run_ranks(check_case, 2, [RECORDS, RECORDS]) == ["checked", "checked"]


def test_ranks_reading_different_records_fail_naming_each_digest():
    stale = [RECORDS[0], {**RECORDS[1], "answer": "4"}]  # one answer changed on one node's copy
    with pytest.raises(Exception, match="the 2 ranks read different records of train.jsonl: "
                                        f"rank 0 {items_digest(RECORDS)}, rank 1 {items_digest(stale)}"):
        run_ranks(check_case, 2, [RECORDS, stale])


def test_one_process_has_nothing_to_compare():
    same_data_callback(RECORDS, "records").on_train_begin(None, None, None)  # no process group: no-op
    assert items_digest(RECORDS) != items_digest(RECORDS[::-1])  # the order is part of the item list
