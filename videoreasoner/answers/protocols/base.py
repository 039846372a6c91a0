"""What every official scoring protocol shares: the item verdict, the protocol description, and the run
that scores a predictions file under one protocol and sets its numbers beside strict's.

A protocol reimplements one official evaluator (its parsing, its arithmetic, its quirks) from reading
its code; each protocol module's docstring lists the quirks it reproduces with the official file and
line. A protocol scores only the problem types its official evaluator covers: records of other types
are skipped and counted (`skipped` in its metrics), never scored.

Result of `run_protocol` (JSON-able; one per protocol in metrics files):

    {"protocol": name, "official": "<repository>/<file> @ <commit>", "settings": {...},
     "problem_types": [...], "n_scored": int, "n_missing": int,
     "skipped": {"n": int, "by_type": {type: int}},
     "failures": {"n": int, "by_error": {error: int}},      # items the official code rejects
     "metrics": {...},                                      # official names and official units
     "vs_strict": {label: {"official_metric", "official", "strict_metric", "strict", "difference"}}}

Not official, ours: a completion longer than MAX_PROTOCOL_CHARS is not read (score 0, failure
"too_long"). Several official parsers use regexes that take quadratic time on long digit runs
(lmms-eval's range pattern: 3 s for 8,000 digits here), and real completions are far shorter (lmms-eval
generates at most 50 tokens for Charades-STA, Video-R1 at most 1,024).

`vs_strict` puts each comparable official number, scaled to a fraction in [0, 1] (lmms-eval reports
percentages), beside the strict metric of the same items (a path into
videoreasoner.answers.metrics.aggregate's output) and their difference (official − strict); None where
either side is undefined.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from videoreasoner.core.schema import RecordError

MISSING = "missing_prediction"
MAX_PROTOCOL_CHARS = 16384


@dataclass(frozen=True)
class ItemScore:
    """One item under a protocol: `score` in the official per-item units (an IoU, a reward, 0/1),
    `details` the other per-item numbers the summary reads, `error` why the official code gave up on
    this item (None when it did not)."""

    score: float
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Comparison:
    """An official summary number (`metric`, divided by `scale` to a fraction) set beside the strict
    metric at `strict_path` (dotted path into aggregate's output)."""

    label: str
    metric: str
    strict_path: str
    scale: float = 1.0


@dataclass(frozen=True)
class Protocol:
    """One official evaluator. score_item(record, text, settings) reads one raw completion as the
    official code would; summarize(items, settings) turns the per-item rows ({"id", "problem_type",
    "score", "details", "error"}) into the official summary numbers."""

    name: str
    official: str
    problem_types: tuple[str, ...]
    settings: dict[str, Any]
    score_item: Callable[[dict, str, dict], ItemScore]
    summarize: Callable[[list[dict], dict], dict[str, Any]]
    comparisons: tuple[Comparison, ...] = ()
    summary: str = ""
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # the values a setting may take


def lookup(metrics: dict[str, Any], path: str) -> float | None:
    """The value at a dotted path of an aggregate ({"value": …} entries unwrapped); None if absent."""
    node: Any = metrics
    for part in _split_path(path):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict):
        node = node.get("value")
    return None if node is None else float(node)


def _split_path(path: str) -> list[str]:
    # Metric names hold dots themselves ("R1@0.5"): a part that starts with a digit joins the one before.
    parts: list[str] = []
    for piece in path.split("."):
        if parts and piece[:1].isdigit():
            parts[-1] += "." + piece
        else:
            parts.append(piece)
    return parts


def compare(protocol: Protocol, official: dict[str, Any], strict: dict[str, Any] | None) -> dict[str, Any]:
    """The vs_strict block: each comparison's official value (as a fraction), strict value, difference."""
    out = {}
    for c in protocol.comparisons:
        raw = lookup(official, c.metric)
        value = None if raw is None else raw / c.scale
        base = lookup(strict, c.strict_path) if strict is not None else None
        out[c.label] = {"official_metric": c.metric, "official": value, "strict_metric": c.strict_path,
                        "strict": base, "difference": None if value is None or base is None else value - base}
    return out


def run_protocol(protocol: Protocol, records: list[dict], by_id: dict[str, str],
                 strict: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                 where: str = "split") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(result, per-item rows) of `protocol` over `records` with predictions `by_id` (id -> raw text).

    A record whose type the protocol does not cover is skipped and counted. A record without a
    prediction is scored as the empty text (what the official code sees when a model answers nothing)
    and counted in n_missing. `settings` override the protocol's defaults (unknown keys raise).
    `strict`: the strict aggregate of the same records, for vs_strict.
    """
    if unknown := sorted(set(settings or {}) - set(protocol.settings)):
        raise ValueError(f"protocol {protocol.name}: unknown setting {unknown[0]!r} "
                         f"(known: {sorted(protocol.settings)})")
    used = {**protocol.settings, **(settings or {})}
    for key, allowed in protocol.choices.items():
        if used[key] not in allowed:
            raise ValueError(f"protocol {protocol.name}: setting {key}={used[key]!r} (allowed: {list(allowed)})")
    items, skipped, missing = [], Counter(), 0
    for record in records:
        rid, ptype = str(record["id"]), record.get("problem_type")
        if ptype not in protocol.problem_types:
            skipped[str(ptype)] += 1
            continue
        text = by_id.get(rid)
        missing += text is None
        too_long = text is not None and len(text) > MAX_PROTOCOL_CHARS
        try:  # a text not read is scored as the empty answer, for the details its summary reads
            verdict = protocol.score_item(record, "" if too_long else text or "", used)
        except (KeyError, TypeError, ValueError) as exc:  # the ground truth, never the prediction
            raise RecordError(f"{where}: record {rid}", "answer",
                              f"protocol {protocol.name} cannot read it: {exc}") from None
        error = MISSING if text is None else "too_long" if too_long else verdict.error
        items.append({"id": rid, "problem_type": ptype, "score": 0.0 if too_long else float(verdict.score),
                      "details": dict(verdict.details), "error": error})
    official = protocol.summarize(items, used) if items else {}
    failures = Counter(i["error"] for i in items if i["error"] and i["error"] != MISSING)
    result = {
        "protocol": protocol.name, "official": protocol.official, "settings": used,
        "problem_types": list(protocol.problem_types), "n_scored": len(items), "n_missing": missing,
        "skipped": {"n": sum(skipped.values()), "by_type": dict(sorted(skipped.items()))},
        "failures": {"n": sum(failures.values()), "by_error": dict(sorted(failures.items()))},
        "metrics": official, "vs_strict": compare(protocol, official, strict),
    }
    return result, items


def mean(values: list[float]) -> float | None:
    """Arithmetic mean, None for no values (the official scripts divide by zero or print nan there)."""
    return sum(values) / len(values) if values else None


def scores_of(items: list[dict], types: tuple[str, ...] | None = None, key: str | None = None) -> list[float]:
    """The items' scores (or details[key]) for the given problem types (all when None)."""
    return [float(i["score"] if key is None else i["details"][key]) for i in items
            if types is None or i["problem_type"] in types]
