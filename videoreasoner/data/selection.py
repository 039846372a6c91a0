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
