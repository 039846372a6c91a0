"""Every rank of a training job reads the same items: the stages' run-time check
(`videoreasoner.training.checkpoints.same_data_callback`), run on two gloo processes as the launchers
start them. Ranks that read different records fail, each naming every rank's digest."""
from __future__ import annotations

from helpers_ranks import run_ranks
from videoreasoner.training.checkpoints import RanksDisagree, items_digest, same_data_callback

RECORDS = [{"id": "synthetic:1", "video": "v1.mp4", "answer": "B"}, {"id": "synthetic:2", "video": "v2.mp4", "answer": "3"}]
STALE = [RECORDS[0], {**RECORDS[1], "answer": "4"}]  # one answer changed in one node's copy


def check_case(cases: list[list[list[dict]]]) -> list[str]:
    """For each case (the records of rank 0, of rank 1): 'agreed', or the error this rank raised."""
    import torch.distributed as dist

    outcomes = []
    for records_by_rank in cases:
        try:
            same_data_callback(records_by_rank[dist.get_rank()], "records of train.jsonl").on_train_begin(
                None, None, None)
            outcomes.append("agreed")
        except RanksDisagree as exc:
            outcomes.append(str(exc))
    return outcomes


def test_ranks_that_read_different_records_all_fail_naming_each_digest():
    outcomes = run_ranks(check_case, 2, [[RECORDS, RECORDS], [RECORDS, STALE]])
    disagree = (f"the 2 ranks read different records of train.jsonl: rank 0 {items_digest(RECORDS)}, "
                f"rank 1 {items_digest(STALE)}")
    assert outcomes == [["agreed", disagree], ["agreed", disagree]]


def test_one_process_has_nothing_to_compare():
    same_data_callback(RECORDS, "records").on_train_begin(None, None, None)  # no process group: no-op
    assert items_digest(RECORDS) != items_digest(RECORDS[::-1])  # the order is part of the item list
