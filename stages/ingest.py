"""`ingest` stage: import every raw source listed in params `data.sources` into one unified record file.

Reads each source's annotation file (and probes the videos it names); writes
data/interim/records.jsonl (the schema of videoreasoner/core/schema.py) and reports/ingest/summary.json.
Run from the workspace root: `python -m stages.ingest` (the DVC stage does).

params.yaml, section `data` (other keys of the section, e.g. the generator's, are ignored here):

    data:
      sources:
        - name: synthetic              # unique; id prefix ("synthetic:<id>") and record `source`
                                       # (synthetic rows keep the generator's source unless `version` is set)
          format: synthetic            # synthetic | video_r1 | sharegpt | charades_sta | hcstvg
          path: data/raw/synthetic/annotations.jsonl
        - name: charades_sta
          format: charades_sta
          path: data/raw/charades/charades_sta_train.txt
          video_root: data/raw/charades/videos   # default: the annotation file's directory
          version: "2017"              # optional: source becomes "charades_sta@2017"
          split_fractions: {val: 0.05, test: 0.05}   # or `split: train` (one fixed split)
          video_ext: .mp4              # format options: see videoreasoner/data/importers/<format>.py

Splits: a fixed `split`; else `split_fractions`, drawn from a hash of the video path relative to the
source's `video_root` (never an absolute path: moving a dataset keeps its splits; a video never lands
in two splits); else (synthetic only) the row's own split. Video paths never leave `video_root`: an
annotation naming `../x.mp4` (or an absolute path outside it) stops the stage. Record `video` paths are
relative to the workspace root (absolute where `video_root` is absolute; a relative `video_root` must
stay inside the workspace).
An unknown format, a missing file, bad JSON or a malformed entry stops the stage with an error naming
the file, the line or index and the field; outputs are written only once every source imported.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path, PurePath
from typing import Any

from tqdm import tqdm

import videoreasoner.core.telemetry  # noqa: F401  (telemetry opt-outs before any tool is imported)
from videoreasoner.core.atomic import write_json, write_jsonl
from videoreasoner.data.importers import IMPORTERS, OPTIONS
from videoreasoner.core.params import section
from videoreasoner.core.paths import INGEST_REPORT, INTERIM_RECORDS, PARAMS_FILE
from videoreasoner.core.schema import SPLITS, Record, RecordError

logger = logging.getLogger("stages.ingest")  # not __main__ under `python -m`

ENTRY_KEYS = ("name", "format", "path", "video_root", "version", "split", "split_fractions")


def _split_fractions(raw: Any, where: str) -> dict[str, float]:
    """{val: f, test: f}: fractions of videos; train gets the rest."""
    if not isinstance(raw, dict) or not set(raw) <= {"val", "test"}:
        raise RecordError(where, "split_fractions", f"expected a mapping with keys val and/or test, got {raw!r}")
    fractions = {}
    for split, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise RecordError(where, f"split_fractions.{split}", f"expected a fraction in [0, 1], got {value!r}")
        fractions[split] = float(value)
    if sum(fractions.values()) > 1:
        raise RecordError(where, "split_fractions", f"fractions add up to more than 1: {raw!r}")
    return fractions


def normalise_entry(index: int, raw: Any, root: Path) -> dict:
    """Check one `data.sources` entry and fill in what importers need (see videoreasoner.data.importers.common)."""
    where = f"{PARAMS_FILE} data.sources[{index}]"
    if not isinstance(raw, dict):
        raise RecordError(where, "(entry)", f"expected a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or ":" in name:
        raise RecordError(where, "name", f"expected a non-empty name without ':', got {name!r}")
    where = f"{where} ({name})"
    fmt = raw.get("format")
    if fmt not in IMPORTERS:
        raise RecordError(where, "format", f"unknown format {fmt!r} (known: {', '.join(IMPORTERS)})")
    unknown = sorted(set(raw) - set(ENTRY_KEYS) - set(OPTIONS[fmt]))
    if unknown:
        allowed = ", ".join(ENTRY_KEYS + OPTIONS[fmt])
        raise RecordError(where, unknown[0], f"not a key of a {fmt} source (allowed: {allowed})")
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise RecordError(where, "path", "missing annotation file path")
    if not (Path(root) / path).is_file():
        raise RecordError(where, "path", f"annotation file {path} does not exist")
    video_root = raw.get("video_root") or str(PurePath(path).parent)
    if not isinstance(video_root, str):
        raise RecordError(where, "video_root", f"expected a directory path, got {video_root!r}")
    if not os.path.isabs(video_root) and os.path.normpath(video_root).split(os.sep)[0] == os.pardir:
        # record paths are workspace-relative; one starting with ".." would be refused by validate
        raise RecordError(where, "video_root", f"{video_root!r} leaves the workspace: give an absolute path")
    entry = dict(raw, root=Path(root), counters=Counter(), video_root=video_root,
                 label=f"{name}@{raw['version']}" if raw.get("version") is not None else name)
    if raw.get("split") is not None and raw.get("split_fractions") is not None:
        raise RecordError(where, "split", "give either split or split_fractions, not both")
    if raw.get("split") is not None and raw["split"] not in SPLITS:
        raise RecordError(where, "split", f"expected one of {', '.join(SPLITS)}, got {raw['split']!r}")
    if raw.get("split_fractions") is not None:
        entry["split_fractions"] = _split_fractions(raw["split_fractions"], where)
    elif raw.get("split") is None and fmt != "synthetic":
        raise RecordError(where, "split", "give split (train|val|test) or split_fractions")
    return entry


def check_disjoint(records: list[Record]) -> None:
    """Ids are unique and no video appears in two splits (across all sources)."""
    seen_ids: set[str] = set()
    video_split: dict[str, tuple[str, str]] = {}
    for rec in records:
        if rec["id"] in seen_ids:
            raise RecordError(rec["id"], "id", "duplicate record id")
        seen_ids.add(rec["id"])
        split, source = video_split.setdefault(rec["video"], (rec["split"], rec["source"]))
        if split != rec["split"]:
            raise RecordError(rec["id"], "split", f"video {rec['video']} is in {rec['split']} here and in "
                                                  f"{split} in source {source}: no video may be in two splits")


def _counts(records: list[Record], field: str) -> dict[str, int]:
    return dict(sorted(Counter(rec[field] for rec in records).items()))


def summarise(records: list[Record], per_source: dict[str, tuple[dict, list[Record]]]) -> dict:
    """Counts by source, split and problem type, plus each source's skipped/adjusted counters."""
    return {
        "n_records": len(records),
        "by_split": _counts(records, "split"),
        "by_problem_type": _counts(records, "problem_type"),
        "by_source": {name: len(recs) for name, (_, recs) in per_source.items()},
        "sources": {
            name: {"format": entry["format"], "path": entry["path"], "source": entry["label"],
                   "n_records": len(recs), "by_split": _counts(recs, "split"),
                   "by_problem_type": _counts(recs, "problem_type"),
                   "counters": dict(sorted(entry["counters"].items()))}
            for name, (entry, recs) in per_source.items()
        },
    }


def import_sources(cfg: dict, root: Path = Path(".")) -> tuple[list[Record], dict]:
    """All records of all sources (in params order) and the summary; raises on the first problem."""
    sources = cfg.get("sources") if isinstance(cfg, dict) else None
    if not isinstance(sources, list) or not sources:
        raise RecordError(f"{PARAMS_FILE} data", "sources", "expected a non-empty list of sources")
    entries = [normalise_entry(i, raw, Path(root)) for i, raw in enumerate(sources)]
    names = Counter(entry["name"] for entry in entries)
    if max(names.values()) > 1:
        raise RecordError(f"{PARAMS_FILE} data", "sources", f"duplicate source name {names.most_common(1)[0][0]!r}")
    records: list[Record] = []
    per_source: dict[str, tuple[dict, list[Record]]] = {}
    for entry in entries:
        logger.info("importing %s (%s) from %s", entry["name"], entry["format"], entry["path"])
        try:
            recs = list(tqdm(IMPORTERS[entry["format"]](entry), desc=entry["name"], unit=" rec",
                             disable=None, leave=False))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{entry['path']}: cannot read ({exc})") from None
        if not recs:
            logger.warning("%s: no records in %s", entry["name"], entry["path"])
        logger.info("%s: %d records; %s", entry["name"], len(recs), dict(entry["counters"]) or "nothing skipped")
        records.extend(recs)
        per_source[entry["name"]] = (entry, recs)
    check_disjoint(records)
    return records, summarise(records, per_source)


def run(cfg: dict, root: Path = Path(".")) -> dict:
    """Import all sources, then write the records and the summary under `root`; returns the summary."""
    records, summary = import_sources(cfg, root)
    write_jsonl(Path(root) / INTERIM_RECORDS, records)
    write_json(Path(root) / INGEST_REPORT, summary)
    logger.info("wrote %d records to %s (by split %s)", len(records), INTERIM_RECORDS, summary["by_split"])
    return summary


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(section("data"))
    except ValueError as exc:  # RecordError included: the message names file, line/index and field
        logger.error("ingest failed: %s", exc)
        logger.debug("traceback", exc_info=True)
        raise SystemExit(1) from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())  # main returns the exit code (vr/cli.py relies on it)
