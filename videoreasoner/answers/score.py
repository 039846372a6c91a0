"""Score an external predictions file against a validated split, with the project's verifiers.

Reads a split JSONL (records of videoreasoner/core/schema.py) and predictions JSONL rows {"id", "prediction"} (the raw
model text); writes <out>/metrics.json (videoreasoner.answers.metrics.aggregate plus a "coverage" block) and
<out>/per_item.jsonl, atomically. Run: `vr score --split data/validated/test.jsonl --predictions p.jsonl
--out reports/score/` (add `--baseline other.jsonl` for the paired AM gain over another model's predictions).

Protocols: `--protocol NAME` (repeatable, or a comma list; names in
videoreasoner/answers/protocols/__init__.py) also scores the file as that official evaluator does,
writing <out>/metrics.<NAME>.json (the protocol's numbers, its settings, the items it skipped and its
difference to strict) and <out>/per_item.<NAME>.jsonl. metrics.json is always strict's (the default);
it names its protocol and settings, and lists each other protocol's file and difference to strict.

Id policy: a split id without a prediction is scored 0 (error "missing_prediction") and stays in every
denominator; the coverage block counts and lists them. Duplicate prediction ids (which one counts?)
and prediction ids absent from the split (most likely the wrong split or file) raise ScoreInputError
naming the file and the ids, before anything is written.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from videoreasoner.core.atomic import read_jsonl, write_json, write_jsonl
from videoreasoner.answers.metrics import aggregate, item_result, paired_difference
from videoreasoner.answers.protocols import STRICT, parse_names, score_protocols, strict_settings
from videoreasoner.core.schema import RecordError
from videoreasoner.answers.verifiers import verify

log = logging.getLogger(__name__)

MAX_LISTED_IDS = 20
METRICS_FILE = "metrics.json"
PER_ITEM_FILE = "per_item.jsonl"


class ScoreInputError(ValueError):
    """The predictions do not fit the split (duplicate or unknown ids, malformed rows)."""


def _listed(ids: list[str]) -> str:
    more = f" … and {len(ids) - MAX_LISTED_IDS} more" if len(ids) > MAX_LISTED_IDS else ""
    return ", ".join(ids[:MAX_LISTED_IDS]) + more


def _index_predictions(predictions: list[dict], where: str) -> dict[str, str]:
    """id -> prediction text; malformed rows and duplicate ids raise ScoreInputError."""
    by_id: dict[str, str] = {}
    duplicates: list[str] = []
    for i, row in enumerate(predictions):
        pid, text = row.get("id"), row.get("prediction")
        if not isinstance(pid, str) or not isinstance(text, str):
            raise ScoreInputError(f"{where}: row {i + 1}: needs string fields 'id' and 'prediction'")
        if pid in by_id:
            duplicates.append(pid)
        by_id[pid] = text
    if duplicates:
        raise ScoreInputError(f"{where}: {len(duplicates)} duplicate prediction ids: {_listed(duplicates)}")
    return by_id


def score_predictions(records: list[dict], predictions: list[dict], seed: int = 0, *,
                      fps: float | None = None, strict: bool = True, n_boot: int = 1000,
                      where: str = "predictions", split_where: str = "split",
                      ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, per_item) for the split `records` and prediction rows {"id", "prediction"}.

    per_item follows the split order: {id, problem_type, score, parsed, details, error, prediction}
    (prediction None when missing). fps: the evaluation frame rate for spatio-temporal scoring (default:
    each record's fps); strict: the answer-extraction mode (see answer_format.extract_answer). A record
    whose ground truth cannot be scored (NaN, a malformed span) raises RecordError naming `split_where`,
    the record id and the field.
    """
    record_ids = [str(r["id"]) for r in records]
    if len(set(record_ids)) != len(record_ids):
        raise ScoreInputError("split: duplicate record ids")
    by_id = _index_predictions(predictions, where)
    unknown = sorted(set(by_id) - set(record_ids))
    if unknown:
        raise ScoreInputError(f"{where}: {len(unknown)} ids are not in the split: {_listed(unknown)}")
    options = {"strict": strict, **({"fps": fps} if fps else {})}
    per_item, missing = [], []
    for record in records:
        rid, text = str(record["id"]), by_id.get(str(record["id"]))
        if text is None:
            missing.append(rid)
        try:
            verdict = verify(record, text or "", **options)
        except RecordError as exc:
            raise RecordError(f"{split_where}: record {exc.where}", exc.field, exc.problem) from None
        error = "missing_prediction" if text is None else verdict.error
        per_item.append(item_result(rid, record["problem_type"], verdict, prediction=text) | {"error": error})
    if missing:
        log.warning("%d of %d split ids have no prediction (scored 0): %s",
                    len(missing), len(records), _listed(missing))
    metrics = aggregate(per_item, seed=seed, n_boot=n_boot)
    metrics["protocol"], metrics["protocol_settings"] = STRICT, strict_settings(strict, fps)
    metrics["coverage"] = {"n_records": len(records), "n_predictions": len(by_id),
                           "n_missing": len(missing), "missing_ids": missing[:MAX_LISTED_IDS]}
    return metrics, per_item



def score_by_source(records: list[dict], per_item: list[dict[str, Any]], seed: int = 0, *,
                    n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """{source: aggregate of that source's items} from score_predictions' per-item rows (in the order of
    `records`): the same item scores, summarised per record `source` ("" for a record without one), with
    each source's own bootstrap intervals."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record, row in zip(records, per_item, strict=True):
        groups.setdefault(str(record.get("source") or ""), []).append(row)
    return {source: aggregate(rows, seed=seed, n_boot=n_boot) for source, rows in sorted(groups.items())}

def main(argv: list[str] | None = None) -> int:
    """Command line: --split PATH --predictions PATH --out DIR [--seed N] [--fps F] [--lenient]
    [--protocol NAME ...] [--baseline PATH]."""
    parser = argparse.ArgumentParser(prog="vr score", description=__doc__.splitlines()[0])
    parser.add_argument("--split", required=True, type=Path, help="validated split JSONL")
    parser.add_argument("--predictions", required=True, type=Path, help='JSONL rows {"id", "prediction"}')
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--fps", type=float, default=None, help="evaluation frame rate (default: record fps)")
    parser.add_argument("--lenient", action="store_true", help="read answers without <answer> tags too")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another model's predictions on the same split: metrics.json then holds "
                             "paired_gain, this file's AM minus the baseline's with a paired 95 %% interval")
    parser.add_argument("--protocol", action="append", default=[], metavar="NAME",
                        help="also score as this official evaluator does (repeatable or a comma list); "
                             "strict is always scored")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        records, predictions = read_jsonl(args.split), read_jsonl(args.predictions)
        metrics, per_item = score_predictions(records, predictions, args.seed, fps=args.fps,
                                              strict=not args.lenient, where=str(args.predictions),
                                              split_where=str(args.split))
        if args.baseline is not None:
            _, base_items = score_predictions(records, read_jsonl(args.baseline), args.seed, fps=args.fps,
                                              strict=not args.lenient, n_boot=1, where=str(args.baseline),
                                              split_where=str(args.split))
            metrics["paired_gain"] = {"baseline": str(args.baseline),
                                      "AM": paired_difference(base_items, per_item, args.seed)}
        protocols = score_protocols(parse_names(args.protocol), records, predictions, metrics,
                                    where=str(args.split))
    except (ValueError, OSError) as exc:  # ScoreInputError, RecordError, bad JSONL, missing file
        log.error("%s", exc)
        return 1
    for name, (result, rows) in protocols.items():
        write_jsonl(args.out / f"per_item.{name}.jsonl", rows)
        write_json(args.out / f"metrics.{name}.json", result)
        log.info("%s: scored %d items, skipped %d of other types %s, %d the official code rejects",
                 name, result["n_scored"], result["skipped"]["n"], result["skipped"]["by_type"] or "",
                 result["failures"]["n"])
    if protocols:
        metrics["protocols"] = {name: {"file": f"metrics.{name}.json", "vs_strict": result["vs_strict"]}
                                for name, (result, _) in protocols.items()}
    write_jsonl(args.out / PER_ITEM_FILE, per_item)
    write_json(args.out / METRICS_FILE, metrics)
    summary = metrics["overall"]["score"]
    log.info("scored %d items (%d missing): mean score %.4f -> %s", len(per_item),
             metrics["coverage"]["n_missing"], summary["value"] or 0.0, args.out)
    if gain := (metrics.get("paired_gain") or {}).get("AM"):
        if gain["value"] is not None:
            log.info("AM minus the baseline's: %+.4f, paired 95 %% interval [%+.4f, %+.4f]",
                     gain["value"], *gain["ci95"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
