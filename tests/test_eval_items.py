"""Which records evaluate scores (videoreasoner/data/eval_items.py): chosen by source and split, drawn at
random with the seed per (source, problem type), independent of file order and of the other sources."""
import random

import pytest

from videoreasoner.data import eval_items


def rows(source: str, split: str, n: int, types=("multiple_choice", "numerical")) -> list[dict]:
    return [{"id": f"{source}:{split}-{t}-{i}", "problem_type": t, "source": source, "split": split}
            for t in types for i in range(n)]


SPLITS = {"test": rows("synthetic-world/v1", "test", 10) + rows("mine/v1", "test", 3)
          + [{"id": "p", "problem_type": "numerical", "source": "mine/v1", "split": "test",
              "meta": {"kind": "perception"}}],
          "val": rows("mine/v1", "val", 2)}


def test_sources_pick_records_by_source_and_split():
    every_test = eval_items.choose({"test": SPLITS["test"]}, eval_items.parse_sources([{"source": "*", "splits": ["test"]}]))
    assert len(every_test) == 26 and "p" not in {r["id"] for r in every_test}  # perception items are not scored
    mine = eval_items.parse_sources([{"source": "mine/*", "splits": ["val", "test"]}])
    assert eval_items.splits_read(mine) == ["val", "test"]
    chosen = eval_items.choose(SPLITS, mine)
    assert {r["source"] for r in chosen} == {"mine/v1"} and {r["split"] for r in chosen} == {"val", "test"}
    assert len(chosen) == 10
    only_val = eval_items.choose(SPLITS, [{"source": "mine/v1", "splits": ["val"]},
                                          {"source": "synthetic-world/v1", "splits": ["val"]}])
    assert {r["id"] for r in only_val} == {r["id"] for r in SPLITS["val"]}


@pytest.mark.parametrize("entries, problem", [
    ([], "non-empty list"), ("test", "non-empty list"), ([{"source": "*"}], r"sources\[0\]: needs exactly"),
    ([{"source": "*", "splits": ["test"]}, {"source": "*", "splits": ["dev"]}], r"sources\[1\]\.splits"),
    ([{"source": "", "splits": ["test"]}], r"sources\[0\]\.source")])
def test_bad_sources_name_the_entry(entries, problem):
    with pytest.raises(ValueError, match=problem):
        eval_items.parse_sources(entries)


def test_draw_is_stratified_by_source_and_type_and_seeded():
    records = SPLITS["test"][:-1]
    drawn = eval_items.draw(records, 4, seed=0)
    assert eval_items.counts(drawn) == {"mine/v1": {"multiple_choice": 3, "numerical": 3},
                                        "synthetic-world/v1": {"multiple_choice": 4, "numerical": 4}}
    assert eval_items.draw(records, 4, seed=0) == drawn
    assert [r for r in records if r in drawn] == drawn  # file order kept
    first_four = [r["id"] for r in records if r["source"] == "synthetic-world/v1"]
    first_four = first_four[:4] + first_four[10:14]
    draws = {tuple(r["id"] for r in eval_items.draw(records, 4, seed)) for seed in range(5)}
    assert len(draws) > 1, "the seed does not change the draw"
    assert any(not set(first_four) <= set(d) for d in draws), "drawn in file order"
    assert eval_items.draw(records, None, 0) == records


def test_draw_depends_neither_on_file_order_nor_on_other_sources():
    records = SPLITS["test"][:-1]
    drawn = {r["id"] for r in eval_items.draw(records, 4, seed=7)}
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    assert {r["id"] for r in eval_items.draw(shuffled, 4, seed=7)} == drawn
    alone = {r["id"] for r in eval_items.draw([r for r in records if r["source"] == "synthetic-world/v1"], 4, seed=7)}
    assert alone == {i for i in drawn if i.startswith("synthetic-world/v1:")}
