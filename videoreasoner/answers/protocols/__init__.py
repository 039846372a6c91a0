"""Scoring protocols by name: `strict` (ours, the default, the one rewards use) and the official
evaluators reimplemented in this package, each scoring only the problem types it covers.

    strict               videoreasoner/answers/metrics.py over the verifiers (every type)
    lmms_eval_charades   lmms_eval_charades.py   temporal_grounding
    video_r1             video_r1.py             multiple_choice, numerical, ocr, free_form, regression
    video_r1_reward      video_r1.py             the same types, Video-R1's RL accuracy reward
    vstar                vstar.py                grounding types (+ answer types for AM, strict-judged)
    timezero             temporal_reward.py      temporal_grounding
    videochat_r1         temporal_reward.py      temporal_grounding
    tubedetr_hcstvg      hcstvg.py               spatio_temporal_grounding
    cgstvg_hcstvg        hcstvg.py               spatio_temporal_grounding

`score_protocols` scores one predictions file under several protocols, each result naming its protocol
and settings and carrying its difference to strict (base.py describes the result).
"""
from __future__ import annotations

from typing import Any

from videoreasoner.answers.protocols import hcstvg, lmms_eval_charades, temporal_reward, video_r1, vstar
from videoreasoner.answers.protocols.base import Protocol, run_protocol

STRICT = "strict"
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    lmms_eval_charades.PROTOCOL, video_r1.PROTOCOL, video_r1.REWARD_PROTOCOL, vstar.PROTOCOL,
    temporal_reward.TIMEZERO, temporal_reward.VIDEOCHAT_R1, hcstvg.TUBEDETR, hcstvg.CGSTVG)}
NAMES = (STRICT, *PROTOCOLS)


def parse_names(values: list[str] | tuple[str, ...]) -> list[str]:
    """Protocol names from repeated and/or comma-separated values, in order, without repeats; an
    unknown name raises ValueError listing the known ones."""
    names: list[str] = []
    for value in values:
        for name in (n.strip() for n in str(value).split(",")):
            if name and name not in names:
                names.append(name)
    if unknown := [n for n in names if n not in NAMES]:
        raise ValueError(f"unknown protocol {unknown[0]!r} (known: {', '.join(NAMES)})")
    return names


def strict_settings(strict: bool = True, fps: float | None = None) -> dict[str, Any]:
    """The settings a strict metrics file records."""
    return {"answers": "strict" if strict else "lenient", "fps": fps or "record fps"}


def score_protocols(names: list[str], records: list[dict], predictions: list[dict],
                    strict_metrics: dict[str, Any] | None,
                    settings: dict[str, dict[str, Any]] | None = None,
                    where: str = "split") -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """{name: (result, per-item rows)} for each official protocol in `names` (`strict` is skipped: its
    metrics are `strict_metrics`, computed by videoreasoner/answers/score.py). `predictions` are rows
    {"id", "prediction"} already checked against the split; `settings` per protocol name override its
    defaults."""
    by_id = {str(row["id"]): row["prediction"] for row in predictions}
    out = {}
    for name in parse_names(names):
        if name == STRICT:
            continue
        out[name] = run_protocol(PROTOCOLS[name], records, by_id, strict_metrics,
                                 (settings or {}).get(name), where=where)
    return out
