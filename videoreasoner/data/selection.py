"""Which records a stage works on: reasoning vs perception items, and a per-type subset.

Perception items (`meta.kind == "perception"`, the synthetic world's direct-answer questions) train the
tiny base's alignment only; every other record (all records without `meta`) is a reasoning record, the
one kind sft, rl, tts and evaluate use.
"""
from __future__ import annotations

KINDS = ("reasoning", "perception")


def _is_perception(record: dict) -> bool:
    return (record.get("meta") or {}).get("kind") == "perception"


def select_records(records: list[dict], kind: str) -> list[dict]:
    """kind "reasoning": records whose meta.kind is not "perception" (all records without meta);
    kind "perception": only meta.kind == "perception". Record order is kept."""
    if kind == "perception":
        return [r for r in records if _is_perception(r)]
    if kind == "reasoning":
        return [r for r in records if not _is_perception(r)]
    raise ValueError(f"unknown record kind {kind!r} (known: {', '.join(KINDS)})")


def subset(records: list[dict], per_type: int | None) -> list[dict]:
    """The first `per_type` reasoning records of each problem type, in file order (None: all)."""
    seen: dict[str, int] = {}
    out = []
    for record in select_records(records, "reasoning"):
        ptype = record["problem_type"]
        if per_type is None or seen.get(ptype, 0) < per_type:
            seen[ptype] = seen.get(ptype, 0) + 1
            out.append(record)
    return out


def with_perception_replay(records: list[dict], share: float, seed: int) -> list[dict]:
    """The reasoning records of `records` plus round(share x their count) perception records, drawn
    without replacement with `seed` (all of them when fewer exist), appended after the reasoning ones
    (the trainer shuffles). share 0: the reasoning records alone.

    Why: supervised fine-tuning on chain-of-thought items alone overwrites what a pretrained base
    learned from direct-answer perception items (measured on the shipped tiny base); mixing some of
    them back in (rehearsal) is the usual remedy."""
    import random

    if not 0.0 <= share <= 10.0:
        raise ValueError(f"sft.perception_replay must be in [0, 10] (perception records per reasoning record), got {share}")
    reasoning = select_records(records, "reasoning")
    perception = select_records(records, "perception")
    wanted = min(len(perception), round(share * len(reasoning)))
    return reasoning + random.Random(seed).sample(perception, wanted)
