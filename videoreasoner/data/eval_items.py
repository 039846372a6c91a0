"""Which validated records the evaluate stage scores: chosen by source and split (params `eval.sources`),
then drawn at random with the eval seed, stratified by source and problem type.

`eval.sources` is a list of {source, splits}: `source` is an fnmatch pattern on a record's `source` field
("*": every source; "mine/v1": one), `splits` the validated splits it is read from (train, val, test). A
record is chosen when one entry matches its source and names its split; it is chosen once even if
several entries do. Only reasoning records are scored (videoreasoner/data/selection.py).

Drawing: the chosen records are grouped into strata (source, problem type); from each stratum at most
`per_stratum` records are drawn with a random.Random seeded by "<seed>:<source>:<problem type>" (a
string seed is hashed with SHA-512, so the draw does not depend on PYTHONHASHSEED), after sorting the
stratum by id: the draw depends on neither the order of the files nor the other strata, so adding a
source never changes which items another source contributes. The result keeps the order of the split
files (splits in the order given, then file order).
"""
from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping, Sequence
from typing import Any

from videoreasoner.data.selection import select_records

SPLITS = ("train", "val", "test")


def parse_sources(entries: Any) -> list[dict[str, Any]]:
    """params eval.sources checked: a non-empty list of {"source": pattern, "splits": [split, …]}."""
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise ValueError(f"params eval.sources: a non-empty list of {{source, splits}} entries, got {entries!r}")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or set(entry) != {"source", "splits"}:
            raise ValueError(f"params eval.sources[{i}]: needs exactly the keys 'source' and 'splits', got {entry!r}")
        source, splits = entry["source"], entry["splits"]
        if not isinstance(source, str) or not source:
            raise ValueError(f"params eval.sources[{i}].source: a source name or pattern, got {source!r}")
        splits = [splits] if isinstance(splits, str) else list(splits or [])
        if not splits or any(s not in SPLITS for s in splits):
            raise ValueError(f"params eval.sources[{i}].splits: one or more of {', '.join(SPLITS)}, got {entry['splits']!r}")
        out.append({"source": source, "splits": splits})
    return out


def splits_read(sources: list[dict[str, Any]]) -> list[str]:
    """The validated splits the entries name, in the order first named."""
    return list(dict.fromkeys(s for entry in sources for s in entry["splits"]))


def choose(split_records: Mapping[str, list[dict]], sources: list[dict[str, Any]]) -> list[dict]:
    """The reasoning records of each split in `split_records` whose source one entry of `sources` names
    for that split. A record without `source` matches only the pattern "*"."""
    out = []
    for split, records in split_records.items():
        patterns = [e["source"] for e in sources if split in e["splits"]]
        for record in select_records(records, "reasoning"):
            name = record.get("source")
            if any(p == "*" or (name is not None and fnmatch.fnmatchcase(str(name), p)) for p in patterns):
                out.append(record)
    return out


def stratum(record: dict) -> tuple[str, str]:
    """(source, problem type) of a record; a record without `source` counts as source ""."""
    return str(record.get("source") or ""), str(record["problem_type"])


def draw(records: list[dict], per_stratum: int | None, seed: int) -> list[dict]:
    """At most `per_stratum` records of each (source, problem type), drawn at random with `seed` (None:
    all records). Record order is kept."""
    if per_stratum is None:
        return list(records)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(stratum(record), []).append(i)
    keep: set[int] = set()
    for (source, ptype), members in groups.items():
        members = sorted(members, key=lambda i: str(records[i]["id"]))
        rng = random.Random(f"{seed}:{source}:{ptype}")
        keep.update(members if len(members) <= per_stratum else rng.sample(members, per_stratum))
    return [r for i, r in enumerate(records) if i in keep]


def counts(records: list[dict]) -> dict[str, dict[str, int]]:
    """{source: {problem type: items}} of the drawn records (for metrics.json settings.items)."""
    out: dict[str, dict[str, int]] = {}
    for record in records:
        source, ptype = stratum(record)
        out.setdefault(source, {}).setdefault(ptype, 0)
        out[source][ptype] += 1
    return {s: dict(sorted(t.items())) for s, t in sorted(out.items())}
