"""validate stage: the data-validation gate between ingest and training.

Reads data/interim/records.jsonl and every video it names (probed once per file with PyAV); writes
data/validated/{train,val,test}.jsonl (records unchanged) and reports/validation/{result.json,data_docs/}.
Any failed expectation writes only the reports and raises ValidationFailed; the splits are built in a
temporary directory and swapped in only on success, so a failed run leaves the last good splits in place
(`dvc repro` itself removes a stage's outputs before running it; `dvc checkout` restores them from the
cache). A relative record `video` that climbs out of the workspace (`../x.mp4`) fails the video check and
is never opened. Run: `python -m stages.validate`.
"""
from __future__ import annotations

import videoreasoner.core.telemetry  # noqa: F401,I001  (first: telemetry off before any tool is imported)

import json
import logging
import multiprocessing
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import pandas as pd
from tqdm import tqdm

from videoreasoner.core.atomic import atomic_dir, read_jsonl, write_json, write_jsonl, write_text
from videoreasoner.data.expectations import Outcome, problem_column, run_suite
from videoreasoner.core.params import read_section, section
from videoreasoner.core.paths import INTERIM_RECORDS, VALIDATED_DIR, VALIDATION_REPORTS, VALIDATION_RESULT, split_file
from videoreasoner.data.record_checks import RECORD_CHECKS, check_video, format_problem, timing_report
from videoreasoner.core.schema import REQUIRED_FIELDS, SPLITS, Record
from videoreasoner.video.decoding import VideoError, VideoInfo, probe

logger = logging.getLogger("stages.validate")  # not __main__ under `python -m`
DATA_DOCS_DIR = VALIDATION_REPORTS / "data_docs"
POOL_MIN_VIDEOS = 64  # below this, starting worker processes costs more than it saves


@dataclass(frozen=True)
class ValidateConfig:
    """params.yaml `validate` section."""

    PARAMS_SECTION: ClassVar[str] = "validate"

    probe_videos: bool = True  # open every video with PyAV; False skips the video checks (logged as a warning)
    decode_frames: bool = True  # decode every frame (catches truncation); False reads container headers only
    duration_tolerance_frames: float = 1.0  # |record duration - decoded duration| <= this many frames
    rotation: str = "apply"  # a rotated file: apply (listed in result.json video_timing) | reject (a video problem)
    required_splits: tuple[str, ...] = SPLITS  # splits that must hold at least one record
    workers: int = 2  # processes probing videos
    max_examples: int = 5  # offending ids named per failed expectation
    data_docs: bool = True  # build the GX Data Docs HTML (about half of GX's time on small inputs)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> ValidateConfig:
        params = dict(params or {})
        if "required_splits" in params:  # null: no split required
            params["required_splits"] = tuple(params["required_splits"] or ())
        return read_section(params, cls)


class ValidationFailed(RuntimeError):
    """At least one expectation failed; `result` is the report written to reports/validation/result.json."""

    def __init__(self, message: str, result: dict[str, Any]):
        super().__init__(message)
        self.result = result


def _probe_one(job: tuple[str, bool]) -> tuple[str, VideoInfo | str]:
    path, decode = job
    try:
        return path, probe(path, decode=decode)
    except (VideoError, av.error.FFmpegError, OSError) as exc:
        return path, f"{path}: {exc}" if path not in str(exc) else str(exc)


def probe_videos(paths: list[str], decode: bool, workers: int) -> dict[str, VideoInfo | str]:
    """Probe each distinct video once: path -> VideoInfo, or the error text for a missing/corrupt file."""
    jobs = [(path, decode) for path in paths]
    bar = dict(total=len(jobs), desc="probing videos", unit="video", disable=None)
    if workers <= 1 or len(jobs) < POOL_MIN_VIDEOS:
        return dict(tqdm(map(_probe_one, jobs), **bar))
    # fork: workers inherit the imported modules (spawn would re-import GX in each, seconds apiece)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        chunk = max(1, len(jobs) // (workers * 8))
        return dict(tqdm(pool.imap_unordered(_probe_one, jobs, chunksize=chunk), **bar))


def escapes_root(video: Any) -> bool:
    """True for a relative `video` that climbs out of the workspace root (ingest never writes one)."""
    if not isinstance(video, str) or os.path.isabs(video):
        return False
    return os.path.normpath(video).split(os.sep)[0] == os.pardir


def video_key(video: Any, root: Path) -> str | None:
    """The file a record's `video` names (relative to root, or absolute), normalised; None if not text
    or if it climbs out of root (such a file is never opened)."""
    if not isinstance(video, str) or not video.strip() or "\0" in video or escapes_root(video):
        return None
    return os.path.normpath(os.path.join(root, video))


def _video_problem(record: Record, info: VideoInfo | str | None, tolerance_frames: float,
                   rotation: str = "apply") -> str | None:
    """The record's video problem: a path that must not be opened, else what `check_video` finds."""
    video = record.get("video")
    if escapes_root(video):
        return format_problem(("video", f"{video!r} climbs out of the workspace root: not opened"))
    if isinstance(video, str) and "\0" in video:
        return format_problem(("video", f"{video!r} contains a NUL character: not opened"))
    return format_problem(check_video(record, info, tolerance_frames, rotation))


def _text(value: Any) -> str | None:
    """A schema value as text for the GX frame (GX and Data Docs handle scalars, not lists or dicts)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _split_leaks(records: list[Record], keys: list[str | None]) -> list[str | None]:
    """Problem text for every record whose video also appears in another (valid) split."""
    frame = pd.DataFrame({"key": keys, "split": [r.get("split") for r in records]}, dtype=object)
    frame = frame[frame["key"].notna() & frame["split"].isin(SPLITS)]
    n_splits = frame.groupby("key")["split"].nunique()
    leaky = frame[frame["key"].isin(n_splits.index[n_splits > 1])]
    splits_of = leaky.groupby("key")["split"].agg(lambda s: ", ".join(sorted(set(s))))
    problems: list[str | None] = [None] * len(records)
    for i, key in zip(leaky.index, leaky["key"]):
        problems[i] = f"split: video {records[i].get('video')!r} appears in splits {splits_of[key]}"
    return problems


def build_frame(records: list[Record], keys: list[str | None], probes: dict[str, VideoInfo | str],
                cfg: ValidateConfig) -> pd.DataFrame:
    """One row per record: position, required fields as text, and one problem column per check."""
    columns: dict[str, Any] = {"record": np.arange(1, len(records) + 1)}
    for name in REQUIRED_FIELDS:
        columns[name] = pd.Series([_text(r.get(name)) for r in records], dtype=object)
    for name, check in RECORD_CHECKS.items():
        columns[problem_column(name)] = pd.Series([format_problem(check(r)) for r in records], dtype=object)
    columns[problem_column("video")] = pd.Series(
        [_video_problem(r, probes.get(k) if k else None, cfg.duration_tolerance_frames, cfg.rotation)
         for r, k in zip(records, keys)], dtype=object)
    columns[problem_column("video_split")] = pd.Series(_split_leaks(records, keys), dtype=object)
    return pd.DataFrame(columns)


def _remove_stale_result(root: Path) -> None:
    """An earlier result.json must never describe this input (a crash mid-run leaves none). The splits
    stay: they are replaced only by a run that passes."""
    (root / VALIDATION_RESULT).unlink(missing_ok=True)


def _failure_message(failed: list[Outcome], result: dict[str, Any]) -> str:
    lines = [f"validation of {INTERIM_RECORDS} failed: {len(failed)} of {len(result['expectations'])} "
             f"expectations failed ({result['n_records']} records, {result['n_videos']} videos); "
             f"{VALIDATED_DIR}/ was left as it was (the last good splits, if any); details in {VALIDATION_RESULT}"
             + (f" and {result['data_docs']}" if result["data_docs"] else "")]
    lines += [f"  - {outcome.message()}" for outcome in failed]
    return "\n".join(lines)


def run(cfg: ValidateConfig, root: Path = Path(".")) -> dict[str, Any]:
    """Validate the records under `root`; returns the result dict (also written to result.json).

    Raises ValidationFailed (reports written, data/validated/ untouched) when any expectation fails.
    """
    root, start, seconds = Path(root), time.perf_counter(), {}
    _remove_stale_result(root)
    records = read_jsonl(root / INTERIM_RECORDS)
    keys = [video_key(r.get("video"), root) for r in records]
    distinct = sorted({k for k in keys if k})
    seconds["read"] = time.perf_counter() - start

    if cfg.probe_videos:
        probes = probe_videos(distinct, cfg.decode_frames, cfg.workers)
    else:
        logger.warning("probe_videos is false: video files are not opened, existence and duration unchecked")
        probes = {}
    seconds["probe"] = time.perf_counter() - start - sum(seconds.values())
    frame = build_frame(records, keys, probes, cfg)
    seconds["checks"] = time.perf_counter() - start - sum(seconds.values())
    with atomic_dir(root / DATA_DOCS_DIR) as docs_dir:  # always replaced: never docs of another run
        if not cfg.data_docs:  # keep the declared DVC out, say why it is empty
            write_text(docs_dir / "index.html", "<p>Data Docs disabled (params: validate.data_docs).</p>\n")
        outcomes = run_suite(frame, docs_dir if cfg.data_docs else None, list(cfg.required_splits),
                             cfg.max_examples)
    seconds["great_expectations"] = time.perf_counter() - start - sum(seconds.values())

    failed = [o for o in outcomes if not o.success]
    result: dict[str, Any] = {
        "success": not failed,
        "input": str(INTERIM_RECORDS),
        "n_records": len(records),
        "n_videos": len(distinct),
        "video_timing": timing_report(probes),  # variable-frame-rate and rotated files, by path
        "n_expectations": len(outcomes),
        "n_failed": len(failed),
        "failed": [o.message() for o in failed],
        "expectations": [o.to_json() for o in outcomes],
        "counts": {"split": dict(Counter(str(r.get("split")) for r in records)),
                   "problem_type": dict(Counter(str(r.get("problem_type")) for r in records))},
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "data_docs": str(DATA_DOCS_DIR / "index.html") if cfg.data_docs else None,
        "outputs": {},
    }
    if failed:
        result["seconds"] = {**seconds, "total": time.perf_counter() - start}
        write_json(root / VALIDATION_RESULT, result)
        raise ValidationFailed(_failure_message(failed, result), result)

    with atomic_dir(root / VALIDATED_DIR) as out_dir:
        for split in SPLITS:
            n = write_jsonl(out_dir / split_file(split).name, (r for r in records if r.get("split") == split))
            result["outputs"][str(split_file(split))] = n
    result["seconds"] = {**seconds, "total": time.perf_counter() - start}
    write_json(root / VALIDATION_RESULT, result)
    logger.info("validated %d records over %d videos in %.1f s: %s", len(records), len(distinct),
                result["seconds"]["total"], result["outputs"])
    return result


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # GX's INFO lines are set-up chatter; one of its modules pins its own logger to INFO
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cfg = ValidateConfig.from_params(section("validate"))
    try:
        run(cfg)
    except ValidationFailed as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
