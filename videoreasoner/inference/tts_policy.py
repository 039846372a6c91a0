"""The TTS operating point: which sweep point becomes the policy, and what policy.json holds.

The tts stage sweeps (sampler x strategy x samples x frames) on the val split and calls choose_point on
its curve rows; policy_from turns the chosen row into policy.json, which evaluate and the registered
model apply with tts_strategies.apply_policy after tts_strategies.with_sampler (its frame sampler).
"""
from __future__ import annotations

from typing import Any

from videoreasoner.answers.format import PROMPT_VERSION
from videoreasoner.video.config import VideoConfig

CURVE_FILE, POLICY_FILE = "curve.csv", "policy.json"


def metric_value(metrics: dict[str, Any], path: str) -> tuple[float | None, list[float] | None]:
    """(value, ci95) at a dotted path of videoreasoner.answers.metrics.aggregate's output, e.g. 'summary.AM',
    'overall.score', 'per_type.temporal_grounding.mIoU'."""
    node: Any = metrics
    for part in path.split(".", 2) if path.startswith("per_type.") else path.split(".", 1):
        node = (node or {}).get(part)
    node = node or {}
    return node.get("value"), node.get("ci95")


def choose_point(rows: list[dict[str, Any]], rule: dict[str, Any]) -> dict[str, Any]:
    """The operating point. Rule `cheapest_within`: among points whose metric is >= best − epsilon,
    the lowest `cost` column (ties: higher metric, then fewer generations, then sweep order).
    `epsilon: ci95` takes epsilon from the data: best − the lower end of the best point's 95 % bootstrap
    interval, so on a small val split a point that cannot be told apart from the best is not paid for
    (a fixed epsilon there chases noise). `cost_tolerance` (a fraction, default 0): points within it of
    that lowest cost count as equally cheap, and the highest metric among them wins, so a saving of a
    few tokens (greedy at 2 frames vs 4: 84 vs 86 generated tokens) never buys a lower metric.
    Rule `best`: the highest metric (ties: lower cost)."""
    cost = rule.get("cost", "tokens_per_item")
    scored = [r for r in rows if r["metric"] is not None]
    if not scored:
        raise ValueError("tts: no sweep point has a metric value")
    best = max(r["metric"] for r in scored)
    name = rule.get("name", "cheapest_within")
    if name == "best":
        eligible = [r for r in scored if r["metric"] >= best - 1e-12]
    elif name == "cheapest_within":
        eligible = [r for r in scored if r["metric"] >= best - _epsilon(rule.get("epsilon", 0.0), scored) - 1e-12]
    else:
        raise ValueError(f"params tts.rule.name: unknown {name!r} (known: cheapest_within, best)")
    tolerance = float(rule.get("cost_tolerance", 0.0))
    if tolerance < 0:
        raise ValueError(f"params tts.rule.cost_tolerance: a fraction >= 0, got {tolerance}")
    cheapest = min(r[cost] for r in eligible)
    cheap = [r for r in eligible if r[cost] <= cheapest * (1 + tolerance) + 1e-12]
    order = {id(r): i for i, r in enumerate(rows)}
    return min(cheap, key=lambda r: (-r["metric"], r[cost], r["generations_per_item"], order[id(r)]))


def _epsilon(value: Any, scored: list[dict[str, Any]]) -> float:
    if value != "ci95":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"params tts.rule.epsilon: a number or 'ci95', got {value!r}") from None
    top = max(scored, key=lambda r: r["metric"])
    low = top.get("metric_low")
    return 0.0 if low is None else max(0.0, top["metric"] - float(low))


def policy_from(row: dict[str, Any], cfg: dict[str, Any], video: VideoConfig, model_version: str) -> dict:
    """policy.json: what tts_strategies.apply_policy reads, the frame sampler (applied with
    `with_sampler`), plus how and on what it was chosen."""
    greedy = row["strategy"] == "greedy"
    return {"strategy": row["strategy"], "n": row["n"], "frames": row["frames"], "sampler": row["sampler"],
            "decoding": {**cfg["decoding"], "do_sample": not greedy},
            "iou_threshold": cfg["iou_threshold"], "scorer": cfg["scorer"], "start_frames": cfg["start_frames"],
            "agreement": cfg["agreement"], "metric": cfg["metric"], "value": row["metric"],
            "ci95": [row["metric_low"], row["metric_high"]], "tokens_per_item": row["tokens_per_item"],
            "video_tokens_per_item": row["video_tokens_per_item"],
            "seconds_per_item": row["seconds_per_item"], "rule": cfg["rule"], "val_items": row["items"],
            "video": video.__dict__, "prompt_version": PROMPT_VERSION, "model_version": model_version}
