"""Dataset-level metrics over per-item results, each with a seeded 95 % bootstrap interval.

Input items are dicts with `problem_type`, `score` (the verifier score in [0, 1]) and `details` (the
verdict's details: `iou` for temporal/spatial grounding, `tiou`/`viou` for spatio-temporal), as
written by videoreasoner/answers/score.py and the evaluate stage (`item_result`). Every value is a fraction in
[0, 1] (anything else, NaN included, raises ValueError naming the item). Output of `aggregate` (JSON-able, keys stable):

    {"n": int, "seed": int, "n_boot": int,
     "overall":  {"score": M},                               # mean score over all items
     "per_type": {"<problem_type>": {"n": int, "score": M, ...type metrics}},
     "summary":  {"accuracy": M, "m_tIoU": M, "m_vIoU": M, "AM": M, "LGM": M}}

where each M is {"value": float | None, "ci95": [low, high] | None, "n": int}. Type metrics:
temporal_grounding and spatial_grounding: "mIoU", "R1@0.3", "R1@0.5", "R1@0.7" (IoU >= threshold);
spatio_temporal_grounding: "m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5" (vIoU > threshold, strict; tIoU and
vIoU are over the frames in each tube's half-open span [start, end), videoreasoner/answers/spans.py);
regression: "MRA" (mean of details.mra, VSI-Bench's mean relative accuracy); free_form: "rouge_official"
(mean of details.rouge_official, the official evaluator's ROUGE); each only when every item has the key.
Summary (V-STaR style): accuracy = mean score over the answer types (multiple_choice, numerical,
free_form, ocr, regression); m_tIoU pools temporal-grounding IoU and spatio-temporal tIoU; m_vIoU pools
spatio-temporal vIoU and spatial-grounding box IoU (a one-frame tube); AM = (accuracy + m_tIoU +
m_vIoU) / 3; LGM = −⅓ Σ ln(1 − x) with x capped at 1 − LGM_EPS (a perfect component would be −ln 0).
AM and LGM are None unless all three pools have items. Bootstrap: resample each pool with
replacement (numpy Generator seeded by the seed and the metric's name, so adding a metric never shifts
another's interval), percentile interval 2.5–97.5.
"""
from __future__ import annotations

import numbers
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from videoreasoner.answers.format import ANSWER_TYPES
from videoreasoner.core.schema import PROBLEM_TYPES

R1_THRESHOLDS = (0.3, 0.5, 0.7)
VIOU_THRESHOLDS = (0.3, 0.5)
LGM_EPS = 1e-6
# Reported beside a type's score, never in the summary: (details key, metric name).
_EXTRA_METRICS = {"regression": (("mra", "MRA"),), "free_form": (("rouge_official", "rouge_official"),)}
_BOOT_CELLS = 4_000_000


def item_result(record_id: str, problem_type: str, verdict: Any, **extra: Any) -> dict[str, Any]:
    """The per-item row metrics read: id, problem_type, score, parsed, details, error (+ extra)."""
    return {"id": record_id, "problem_type": problem_type, "score": float(verdict.score),
            "parsed": verdict.parsed, "details": dict(verdict.details), "error": verdict.error, **extra}


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _bootstrap(pools: Sequence[np.ndarray], stat: Callable[..., np.ndarray], name: str,
               seed: int, n_boot: int) -> dict[str, Any]:
    """Point value and percentile 95 % interval of stat(*pools); stat works on (n_boot, n) arrays."""
    n = int(sum(len(p) for p in pools))
    if any(len(p) == 0 for p in pools):
        return {"value": None, "ci95": None, "n": n}
    value = float(stat(*[p[None, :] for p in pools])[0])
    rng = _rng(seed, name)
    rows = max(1, _BOOT_CELLS // n)  # bounded memory: resample in chunks of rows
    boot = np.concatenate([
        stat(*[p[rng.integers(0, len(p), size=(min(rows, n_boot - start), len(p)))] for p in pools])
        for start in range(0, n_boot, rows)
    ])
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"value": value, "ci95": [float(low), float(high)], "n": n}


def _mean(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1)


def _share_at_least(threshold: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: (x >= threshold).mean(axis=1)


def _share_above(threshold: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: (x > threshold).mean(axis=1)


def _am(acc: np.ndarray, tiou: np.ndarray, viou: np.ndarray) -> np.ndarray:
    return (acc.mean(axis=1) + tiou.mean(axis=1) + viou.mean(axis=1)) / 3


def _lgm(acc: np.ndarray, tiou: np.ndarray, viou: np.ndarray) -> np.ndarray:
    parts = [np.minimum(x.mean(axis=1), 1 - LGM_EPS) for x in (acc, tiou, viou)]
    return -sum(np.log1p(-p) for p in parts) / 3


def _values(items: list[dict], key: str | None) -> np.ndarray:
    """Scores (key None) or a details field of the items, as float64; a missing value counts as 0.
    A value that is not a number in [0, 1] (NaN, inf, a percentage) raises ValueError naming the item:
    it comes from a broken verifier or a hand-edited file, and averaging it in would be silently wrong."""
    out = []
    for i, item in enumerate(items):
        raw = item.get("score") if key is None else (item.get("details") or {}).get(key)
        value = 0.0 if raw is None else raw
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
            field_name = "score" if key is None else f"details.{key}"
            who = f"id {item['id']}" if "id" in item else f"#{i} of its pool"
            raise ValueError(f"{item.get('problem_type')} item {who}: {field_name} is {raw!r}, "
                             "not a fraction in [0, 1]")
        out.append(float(value))
    return np.asarray(out, dtype=np.float64)


def _type_metrics(ptype: str, items: list[dict], seed: int, n_boot: int) -> dict[str, Any]:
    def boot(name: str, values: np.ndarray, stat: Callable) -> dict[str, Any]:
        return _bootstrap([values], stat, f"{ptype}/{name}", seed, n_boot)

    out: dict[str, Any] = {"n": len(items), "score": boot("score", _values(items, None), _mean)}
    if ptype in ("temporal_grounding", "spatial_grounding"):
        iou = _values(items, "iou")
        out["mIoU"] = boot("mIoU", iou, _mean)
        for k in R1_THRESHOLDS:
            out[f"R1@{k}"] = boot(f"R1@{k}", iou, _share_at_least(k))
    for key, name in _EXTRA_METRICS.get(ptype, ()):
        if all(key in (item.get("details") or {}) for item in items):  # absent from older result files
            out[name] = boot(name, _values(items, key), _mean)
    if ptype == "spatio_temporal_grounding":
        tiou, viou = _values(items, "tiou"), _values(items, "viou")
        out["m_tIoU"] = boot("m_tIoU", tiou, _mean)
        out["m_vIoU"] = boot("m_vIoU", viou, _mean)
        for k in VIOU_THRESHOLDS:
            out[f"vIoU@{k}"] = boot(f"vIoU@{k}", viou, _share_above(k))
    return out


def _pools(by_type: dict[str, list[dict]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The summary's three pools (accuracy, tIoU, vIoU), items in by_type order."""
    def pool(pairs: list[tuple[str, str | None]]) -> np.ndarray:
        parts = [_values(by_type.get(t, []), key) for t, key in pairs]
        return np.concatenate(parts) if parts else np.zeros(0)

    return (pool([(t, None) for t in ANSWER_TYPES]),
            pool([("temporal_grounding", "iou"), ("spatio_temporal_grounding", "tiou")]),
            pool([("spatio_temporal_grounding", "viou"), ("spatial_grounding", "iou")]))


def _by_type(items: list[dict]) -> dict[str, list[dict]]:
    by_type: dict[str, list[dict]] = {}
    for i, item in enumerate(items):
        ptype = item.get("problem_type")
        if ptype not in PROBLEM_TYPES:
            raise ValueError(f"item {i} (id {item.get('id', '?')}): unknown problem_type {ptype!r}")
        by_type.setdefault(ptype, []).append(item)
    return by_type


def _paired_index(items_a: list[dict], items_b: list[dict], caller: str) -> dict[str, dict]:
    """items_b by id, after checking that both lists score the same ids (a paired comparison)."""
    index_b = {str(item["id"]): item for item in items_b}
    if unpaired := sorted({str(item["id"]) for item in items_a} ^ set(index_b)):
        raise ValueError(f"{caller}: item id {unpaired[0]!r} is scored for one model only")
    return index_b


def paired_difference(items_a: list[dict], items_b: list[dict], seed: int = 0,
                      n_boot: int = 1000) -> dict[str, Any]:
    """AM(b) − AM(a) on the same items, with a paired bootstrap: each resample of the items scores both
    models, so the interval of the difference is far narrower than the two models' own intervals
    overlapping suggests. Items are matched by `id`; both lists must hold the same ids."""
    index_b = _paired_index(items_a, items_b, "paired_difference")
    by_a = _by_type(items_a)
    by_b = {t: [index_b[str(item["id"])] for item in rows] for t, rows in by_a.items()}
    pools = [np.stack([pa, pb], axis=-1) for pa, pb in zip(_pools(by_a), _pools(by_b))]

    def delta(acc, tiou, viou):
        am = _am(acc, tiou, viou)
        return am[..., 1] - am[..., 0]

    return _bootstrap(pools, delta, "paired/AM", seed, n_boot)


def paired_type_differences(items_a: list[dict], items_b: list[dict], seed: int = 0,
                            n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """Per problem type: mean score(b) − score(a) on that type's items, matched by `id`, with a paired
    bootstrap interval. A type whose interval lies wholly below 0 regressed from a to b."""
    index_b = _paired_index(items_a, items_b, "paired_type_differences")
    out = {}
    for ptype, rows in _by_type(items_a).items():
        delta = _values([index_b[str(item["id"])] for item in rows], None) - _values(rows, None)
        out[ptype] = _bootstrap([delta], _mean, f"paired/{ptype}", seed, n_boot)
    return {t: out[t] for t in PROBLEM_TYPES if t in out}


def _summary(by_type: dict[str, list[dict]], seed: int, n_boot: int) -> dict[str, Any]:
    acc, tiou, viou = _pools(by_type)
    return {
        "accuracy": _bootstrap([acc], _mean, "summary/accuracy", seed, n_boot),
        "m_tIoU": _bootstrap([tiou], _mean, "summary/m_tIoU", seed, n_boot),
        "m_vIoU": _bootstrap([viou], _mean, "summary/m_vIoU", seed, n_boot),
        "AM": _bootstrap([acc, tiou, viou], _am, "summary/AM", seed, n_boot),
        "LGM": _bootstrap([acc, tiou, viou], _lgm, "summary/LGM", seed, n_boot),
    }


def aggregate(items: list[dict], seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """All metrics of a result set (structure in the module docstring); deterministic given seed."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    by_type = _by_type(items)
    return {
        "n": len(items),
        "seed": seed,
        "n_boot": n_boot,
        "overall": {"score": _bootstrap([_values(items, None)], _mean, "overall/score", seed, n_boot)},
        "per_type": {t: _type_metrics(t, by_type[t], seed, n_boot) for t in PROBLEM_TYPES if t in by_type},
        "summary": _summary(by_type, seed, n_boot),
    }
