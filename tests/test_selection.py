"""Which records sft trains on: the reasoning records, plus a seeded share of perception records
(`sft.perception_replay`, rehearsal of what the pretrained base learned)."""
import pytest

from videoreasoner.data.selection import select_records, with_perception_replay


def _records(n_reasoning: int, n_perception: int) -> list[dict]:
    reasoning = [{"id": f"r{i}", "problem_type": "numerical"} for i in range(n_reasoning)]
    perception = [{"id": f"p{i}", "problem_type": "free_form", "meta": {"kind": "perception"}}
                  for i in range(n_perception)]
    return [x for pair in zip(reasoning, perception) for x in pair] + reasoning[n_perception:] + perception[n_reasoning:]


def test_no_replay_is_the_reasoning_records_in_file_order():
    records = _records(6, 4)
    assert with_perception_replay(records, 0.0, seed=1) == select_records(records, "reasoning")


def test_replay_adds_the_share_of_distinct_perception_records_drawn_with_the_seed():
    records = _records(10, 8)
    mixed = with_perception_replay(records, 0.5, seed=1)
    ids = [r["id"] for r in mixed]
    assert ids[:10] == [f"r{i}" for i in range(10)]
    replayed = ids[10:]
    assert len(replayed) == 5 and len(set(replayed)) == 5 and all(i.startswith("p") for i in replayed)
    assert mixed == with_perception_replay(records, 0.5, seed=1)  # the seed fixes the draw
    draws = {tuple(r["id"] for r in with_perception_replay(records, 0.5, seed=s)[10:]) for s in range(6)}
    assert len(draws) > 1  # and a different seed draws differently


def test_replay_takes_every_perception_record_when_the_share_asks_for_more():
    mixed = with_perception_replay(_records(4, 3), 2.0, seed=0)
    assert sorted(r["id"] for r in mixed[4:]) == ["p0", "p1", "p2"]


@pytest.mark.parametrize("share", [-0.1, 11.0])
def test_a_share_out_of_range_is_refused_naming_the_param(share):
    with pytest.raises(ValueError, match="sft.perception_replay"):
        with_perception_replay(_records(2, 2), share, seed=0)
