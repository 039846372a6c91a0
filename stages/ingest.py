"""`ingest` stage: import every raw source listed in params `data.sources` into one unified record file.

Reads each source's annotation file (and probes the videos it names); writes
data/interim/records.jsonl (the schema of videoreasoner/core/schema.py) and reports/ingest/summary.json.
Run from the workspace root: `python -m stages.ingest` (the DVC stage does).

params.yaml, section `data` (other keys of the section, e.g. the generator's, are ignored here):

    data:
      sources:
        - name: synthetic              # unique; id prefix ("synthetic:<id>") and record `source`
                                       # (synthetic rows keep the generator's source unless `version` is set)
          format: synthetic            # synthetic | records | video_r1 | sharegpt | charades_sta | hcstvg
                                       # | mvbench | videomme | vstar (videoreasoner/data/importers/)
          path: data/raw/synthetic/annotations.jsonl
        - name: charades_sta
          format: charades_sta
          path: data/raw/charades/charades_sta_train.txt
          video_root: data/raw/charades/videos   # default: the annotation file's directory
          version: "2017"              # optional: source becomes "charades_sta@2017"
          split_fractions: {val: 0.05, test: 0.05}   # or `split: train` (one fixed split)
          video_ext: .mp4              # format options: see videoreasoner/data/importers/<format>.py
          on_error: skip               # optional: fail | skip (default data.on_error)
          max_errors: 50               # optional: malformed entries listed (default data.max_errors_reported)
      on_error: fail                   # a malformed entry: fail (the stage stops) | skip (left out, counted)
      max_errors_reported: 20          # malformed entries listed per source, in the error or the summary

Splits: a fixed `split`; else `split_fractions`, drawn from a hash of the video path relative to the
source's `video_root` (never an absolute path: moving a dataset keeps its splits; a video never lands
in two splits); else (synthetic and records only) the row's own split. Video paths never leave `video_root`: an
annotation naming `../x.mp4` (or an absolute path outside it) stops the stage. Record `video` paths are
relative to the workspace root (absolute where `video_root` is absolute; a relative `video_root` must
stay inside the workspace).
An unknown format, a missing file or bad JSON stops the stage with an error naming the file (and line).
A malformed entry does not stop its source's import: every one is counted and the first
`max_errors` are listed, each naming the file, the line or index and the field. Then `on_error: fail`
stops the stage with that list, and `on_error: skip` leaves those entries out and records the count and
the list in the source's `skipped` of the summary. Outputs are written only once every source imported.
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
from videoreasoner.data.importers import IMPORTERS, OPTIONS, OWN_SPLIT
from videoreasoner.data.importers.common import raise_noted
from videoreasoner.core.params import SectionDefaults, section
from videoreasoner.core.paths import INGEST_REPORT, INTERIM_RECORDS, PARAMS_FILE
from videoreasoner.core.schema import SPLITS, Record, RecordError

logger = logging.getLogger("stages.ingest")  # not __main__ under `python -m`

ENTRY_KEYS = ("name", "format", "path", "video_root", "version", "split", "split_fractions", "on_error",
              "max_errors")
ON_ERROR = ("fail", "skip")
# Keys of the data section read here (sources, and the generator's keys, are left to their readers).
INGEST_DEFAULTS = SectionDefaults("data", {"on_error": "fail", "max_errors_reported": 20}, open=True)


def _error_policy(raw: dict, defaults: dict, where: str) -> dict:
    """on_error and max_errors of a source: its own keys, else the data section's defaults."""
    on_error = raw.get("on_error", defaults["on_error"])
    if on_error not in ON_ERROR:
        raise RecordError(where, "on_error", f"expected one of {', '.join(ON_ERROR)}, got {on_error!r}")
    cap = raw.get("max_errors", defaults["max_errors_reported"])
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        field = "max_errors" if "max_errors" in raw else "max_errors_reported"
        raise RecordError(where, field, f"expected a positive integer, got {cap!r}")
    return {"on_error": on_error, "max_errors": cap}


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


def normalise_entry(index: int, raw: Any, root: Path, defaults: dict | None = None) -> dict:
    """Check one `data.sources` entry and fill in what importers need (see videoreasoner.data.importers.common);
    `defaults`: the data section's on_error and max_errors_reported (INGEST_DEFAULTS)."""
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
    entry = dict(raw, root=Path(root), counters=Counter(), video_root=video_root, errors=[], n_errors=0,
                 label=f"{name}@{raw['version']}" if raw.get("version") is not None else name,
                 **_error_policy(raw, defaults or INGEST_DEFAULTS.values, where))
    if raw.get("split") is not None and raw.get("split_fractions") is not None:
        raise RecordError(where, "split", "give either split or split_fractions, not both")
    if raw.get("split") is not None and raw["split"] not in SPLITS:
        raise RecordError(where, "split", f"expected one of {', '.join(SPLITS)}, got {raw['split']!r}")
    if raw.get("split_fractions") is not None:
        entry["split_fractions"] = _split_fractions(raw["split_fractions"], where)
    elif raw.get("split") is None and fmt not in OWN_SPLIT:
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
    """Counts by source, split and problem type, plus each source's skipped/adjusted counters and, for
    an on_error: skip source, its `skipped` malformed entries (count and the listed errors)."""
    return {
        "n_records": len(records),
        "by_split": _counts(records, "split"),
        "by_problem_type": _counts(records, "problem_type"),
        "by_source": {name: len(recs) for name, (_, recs) in per_source.items()},
        "sources": {
            name: {"format": entry["format"], "path": entry["path"], "source": entry["label"],
                   "n_records": len(recs), "by_split": _counts(recs, "split"),
                   "by_problem_type": _counts(recs, "problem_type"),
                   "counters": dict(sorted(entry["counters"].items())),
                   **({"skipped": {"n": entry["n_errors"], "errors": [str(e) for e in entry["errors"]]}}
                      if entry["on_error"] == "skip" else {})}
            for name, (entry, recs) in per_source.items()
        },
    }


def import_sources(cfg: dict, root: Path = Path(".")) -> tuple[list[Record], dict]:
    """All records of all sources (in params order) and the summary; raises on the first source that
    cannot be read or has malformed entries under on_error: fail (listing them)."""
    sources = cfg.get("sources") if isinstance(cfg, dict) else None
    if not isinstance(sources, list) or not sources:
        raise RecordError(f"{PARAMS_FILE} data", "sources", "expected a non-empty list of sources")
    defaults = INGEST_DEFAULTS.read(cfg)
    entries = [normalise_entry(i, raw, Path(root), defaults) for i, raw in enumerate(sources)]
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
        if entry["on_error"] == "fail":
            raise_noted(entry)
        elif entry["n_errors"]:
            logger.warning("%s: skipped %d malformed entries (on_error: skip), e.g. %s", entry["name"],
                           entry["n_errors"], entry["errors"][0])
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
