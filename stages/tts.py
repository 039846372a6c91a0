"""`tts` stage (calibration): sweep sampler × strategy × samples × frame budget on the val split, choose a policy.

Reads models/rl, data/validated/val.jsonl (reasoning records, `tts.max_items_per_type` per type),
params `tts`, `video`, `compute`; writes reports/tts/curve.csv (one row per point: metric with its 95 %
interval, generated tokens, video tokens and wall seconds per item) and reports/tts/policy.json (the point
chosen by `tts.rule`, default: the cheapest point within epsilon of the best metric (epsilon a number, or
`ci95`: the best point's bootstrap interval); it names the frame
sampler, which evaluate and the registered model then use). Run: `python -m stages.tts`.

Cost of the sweep: samples are drawn once per frame level (n = max of `tts.n`) and every point replays
the first n of them, so self-consistency, confidence vote, best-of-n and sparse-to-dense share draws.
A point's seconds are its share of the measured generation time (n / n_max of the level's sampling
seconds per item, summed over the levels an item visits) plus its own measured vote/scoring time.
`tts.samplers` (videoreasoner/video/samplers.py) is the outer axis: each sampler gets its own frames and samples. Video
tokens per item are measured at the processor (None with a backend that bypasses it, e.g. vLLM).
"""
from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401
from videoreasoner.answers.score import score_predictions
from videoreasoner.core.atomic import atomic_path, read_jsonl, write_json
from videoreasoner.core.params import SectionDefaults
from videoreasoner.core.paths import MODELS_RL, TTS_REPORTS, split_file
from videoreasoner.core.tracking import stage_run
from videoreasoner.data.selection import subset
from videoreasoner.inference.engines import Decoding, Engine, load_engine
from videoreasoner.inference.tts_policy import CURVE_FILE, POLICY_FILE, choose_point, metric_value, policy_from
from videoreasoner.inference.tts_strategies import (
    STRATEGIES,
    Answer,
    resolve_scorer,
    select_best,
    select_vote,
    sparse_to_dense,
    with_sampler,
)
from videoreasoner.training.checkpoints import model_digest
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import count_video_tokens
from videoreasoner.video.samplers import SAMPLERS

log = logging.getLogger(__name__)
CURVE_COLUMNS = ("point", "sampler", "strategy", "n", "frames", "metric", "metric_low", "metric_high",
                 "tokens_per_item", "video_tokens_per_item", "seconds_per_item", "generations_per_item", "items",
                 "chosen")

# Equal to params.yaml `tts` (tests/test_params_defaults.py): a partial section behaves as the pipeline.
DEFAULTS: dict[str, Any] = {
    "max_items_per_type": 4, "samplers": ["uniform"], "strategies": list(STRATEGIES), "n": [4], "frames": [2, 4],
    "start_frames": 2,
    "agreement": 1.0, "iou_threshold": 0.5, "scorer": "likelihood",
    "decoding": {"max_new_tokens": 192, "temperature": 0.8, "top_p": 0.95, "top_k": 0, "seed": 0},
    "metric": "summary.AM", "rule": {"name": "cheapest_within", "epsilon": "ci95", "cost": "tokens_per_item",
                                   "cost_tolerance": 0.1},
    "batch_size": 96, "torch_threads": 2, "seed": 0, "n_boot": 200, "backend": "hf",
}

TTS_SECTION = SectionDefaults("tts", DEFAULTS, nested=("decoding", "rule"))


def settings(params: dict[str, Any] | None) -> dict[str, Any]:
    """params `tts` over DEFAULTS; unknown keys are an error naming the key."""
    out = TTS_SECTION.read(params)
    if bad := [s for s in out["strategies"] if s not in STRATEGIES]:
        raise ValueError(f"params tts.strategies: unknown {bad[0]!r} (known: {STRATEGIES})")
    if not out["samplers"]:
        raise ValueError(f"params tts.samplers: empty (name at least one of {list(SAMPLERS)})")
    if bad := [s for s in out["samplers"] if s not in SAMPLERS]:
        raise ValueError(f"params tts.samplers: unknown {bad[0]!r} (known: {list(SAMPLERS)})")
    return out


@dataclass
class TTSRun:
    """Everything the stage reads; `engine` lets tests pass a ready engine (else models/rl is loaded)."""

    tts: dict[str, Any] = field(default_factory=dict)
    video: dict[str, Any] = field(default_factory=dict)
    compute: dict[str, Any] = field(default_factory=dict)
    model_dir: Path = MODELS_RL
    val_file: Path = split_file("val")
    video_root: Path = Path(".")
    out_dir: Path = TTS_REPORTS
    tracking: bool = True
    engine: Engine | None = None


def _levels(cfg: dict[str, Any]) -> list[int]:
    levels = set(cfg["frames"])
    if "sparse_to_dense" in cfg["strategies"]:
        level = int(cfg["start_frames"])
        while level <= max(cfg["frames"]):
            levels.add(level)
            level *= 2
    return sorted(levels)


def sweep(engine: Engine, records: list[dict], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """All points of the sweep as curve rows (chosen = 0): every sampler of cfg["samplers"] in turn."""
    return [row for sampler in cfg["samplers"] for row in _sweep_sampler(with_sampler(engine, sampler), records,
                                                                           cfg, sampler)]


def _sweep_sampler(engine: Engine, records: list[dict], cfg: dict[str, Any], sampler: str) -> list[dict[str, Any]]:
    sampling = Decoding.from_params({**cfg["decoding"], "do_sample": True})
    greedy_dec = Decoding.from_params({**cfg["decoding"], "do_sample": False})
    n_max, sampled = max(cfg["n"]), [s for s in cfg["strategies"] if s != "greedy"]
    greedy_pool, pool, secs, vtok = {}, {}, {}, {}
    for level in _levels(cfg):
        with count_video_tokens() as meter:
            if "greedy" in cfg["strategies"] and level in cfg["frames"]:
                t0 = time.perf_counter()
                greedy_pool[level] = engine.generate(records, decoding=greedy_dec, frames=level,
                                                     desc=f"{sampler} greedy @{level}f")
                secs[("greedy", level)] = (time.perf_counter() - t0) / len(records)
            if sampled:
                t0 = time.perf_counter()
                pool[level] = engine.generate(records, n=n_max, decoding=sampling, frames=level,
                                              desc=f"{sampler} sample x{n_max} @{level}f")
                secs[("sample", level)] = (time.perf_counter() - t0) / len(records) / n_max
        vtok[level] = meter.summary()["video_tokens_per_item"]
    rows = []
    for frames in cfg["frames"]:
        if "greedy" in cfg["strategies"]:
            answers = [Answer(g[0].text, None, g[0].n_tokens, 1, frames) for g in greedy_pool[frames]]
            rows.append(_row(records, answers, sampler, "greedy", 1, frames, secs[("greedy", frames)],
                             vtok[frames], cfg))
        for n in sorted(cfg["n"]):
            first = {lv: [g[:n] for g in gens] for lv, gens in pool.items()}
            for strategy in sampled:
                t0 = time.perf_counter()
                answers = _replay(engine, records, strategy, n, frames, first, cfg)
                own = (time.perf_counter() - t0) / len(records)
                visits = [_visited(a, cfg, frames) for a in answers]
                gen_secs = sum(n * secs[("sample", lv)] for v in visits for lv in v) / len(records)
                video = None if any(vtok[lv] is None for v in visits for lv in v) else \
                    sum(vtok[lv] for v in visits for lv in v) / len(records)
                rows.append(_row(records, answers, sampler, strategy, n, frames, gen_secs + own, video, cfg))
    return rows


def _visited(answer: Answer, cfg: dict[str, Any], frames: int) -> list[int]:
    """Frame levels an item's answer used (sparse_to_dense: start, 2×start, … up to its last level)."""
    if "levels" not in answer.extra:
        return [frames]
    start = min(int(cfg["start_frames"]), frames)
    return [start * 2 ** k for k in range(answer.extra["levels"])]


def _replay(engine, records, strategy, n, frames, first, cfg) -> list[Answer]:
    """A sampled strategy on the pooled samples (no new generation)."""
    thr = float(cfg["iou_threshold"])
    if strategy in ("self_consistency", "confidence_vote"):
        return [select_vote(engine, r, g, frames, thr, strategy == "confidence_vote")
                for r, g in zip(records, first[frames])]
    if strategy == "best_of_n":
        return select_best(engine, records, first[frames], frames, resolve_scorer(cfg["scorer"]))
    index = {id(r): i for i, r in enumerate(records)}
    return sparse_to_dense(engine, records, n=n, start_frames=int(cfg["start_frames"]), max_frames=frames,
                           iou_threshold=thr, agreement=float(cfg["agreement"]),
                           sampler=lambda recs, lv: [first[lv][index[id(r)]] for r in recs])


def _row(records, answers, sampler, strategy, n, frames, seconds, video_tokens, cfg) -> dict[str, Any]:
    predictions = [{"id": str(r["id"]), "prediction": a.text} for r, a in zip(records, answers)]
    metrics, _ = score_predictions(records, predictions, cfg["seed"], n_boot=cfg["n_boot"], where="tts sweep")
    value, ci = metric_value(metrics, cfg["metric"])
    if value is None:
        log.warning("metric %s undefined on this subset; using overall.score", cfg["metric"])
        value, ci = metric_value(metrics, "overall.score")
    k = len(records)
    return {"point": f"{strategy} n={n} frames={frames} sampler={sampler}", "sampler": sampler,
            "strategy": strategy, "n": n, "frames": frames,
            "metric": value, "metric_low": ci[0] if ci else None, "metric_high": ci[1] if ci else None,
            "tokens_per_item": sum(a.tokens for a in answers) / k, "video_tokens_per_item": video_tokens,
            "seconds_per_item": seconds,
            "generations_per_item": sum(a.generations for a in answers) / k, "items": k, "chosen": 0}


def write_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in CURVE_COLUMNS})


def run(cfg: TTSRun) -> dict[str, Any]:
    """Sweep, choose, write curve.csv and policy.json; return the policy."""
    tts = settings(cfg.tts)
    video = VideoConfig.from_params(cfg.video)
    records = subset(read_jsonl(cfg.val_file), tts["max_items_per_type"])
    if not records:
        raise ValueError(f"{cfg.val_file}: no reasoning records to calibrate on")
    version = model_digest(cfg.model_dir) if Path(cfg.model_dir).is_dir() else str(cfg.model_dir)
    with stage_run("tts", {"tts": tts, "video": cfg.video}, cfg.tracking) as mlrun:
        engine = cfg.engine or load_engine(cfg.model_dir, video, cfg.video_root, backend=tts["backend"],
                                           dtype=cfg.compute.get("dtype", "float32"),
                                           batch_size=tts["batch_size"], model_version=version,
                                           torch_threads=tts["torch_threads"])
        log.info("tts: %d val items, samplers %s, strategies %s, n %s, frames %s", len(records),
                 tts["samplers"], tts["strategies"], tts["n"], tts["frames"])
        rows = sweep(engine, records, tts)
        chosen = choose_point(rows, tts["rule"])
        chosen["chosen"] = 1
        policy = policy_from(chosen, tts, video, version)
        write_curve(cfg.out_dir / CURVE_FILE, rows)
        write_json(cfg.out_dir / POLICY_FILE, policy)
        for step, row in enumerate(rows):
            mlrun.log_metrics({"tts/metric": row["metric"] or 0.0, "tts/tokens_per_item": row["tokens_per_item"]},
                              step=step)
        mlrun.log_metrics({"policy_metric": policy["value"] or 0.0,
                           "policy_tokens_per_item": policy["tokens_per_item"]})
        mlrun.log_artifact(cfg.out_dir / CURVE_FILE)
        mlrun.log_artifact(cfg.out_dir / POLICY_FILE)
    log.info("tts: chose %s (%s %.4f, %.1f tokens/item)", chosen["point"], tts["metric"], chosen["metric"],
             chosen["tokens_per_item"])
    return policy


def main() -> int:
    from videoreasoner.core.params import section

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(TTSRun(tts=section("tts"), video=section("video"), compute=section("compute")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())  # main returns the exit code (vr/cli.py relies on it)
