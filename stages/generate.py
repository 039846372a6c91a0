"""`generate` stage: render the synthetic video world into H.264 .mp4 files and annotated records.

Reads params `data.synthetic`; writes data/raw/synthetic/{videos/*.mp4, annotations.jsonl} (video paths
relative to data/raw/synthetic) and reports/generate/summary.json. Run: `dvc repro generate` or
`python -m stages.generate`. The same seed gives byte-identical annotations, whatever the worker count.
Long clips (`data.synthetic.long.videos`, off by default; videoreasoner/data/world/long.py) go to
videos/long-<split>-<index>.mp4 with source LONG_SOURCE, after the default clips, from their own seed
streams, so turning them on leaves every default clip and record unchanged.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from videoreasoner.core import telemetry  # noqa: F401
from videoreasoner.core.atomic import atomic_dir, write_json, write_jsonl
from videoreasoner.core.paths import GENERATE_REPORT, SYNTHETIC_DIR
from videoreasoner.core.schema import SPLITS, make_record
from videoreasoner.video.decoding import encode_mp4
from videoreasoner.data.world.config import WorldConfig
from videoreasoner.data.world.long import long_items, render_long, sample_long_scene
from videoreasoner.data.world.perception import perception_items
from videoreasoner.data.world.questions import reasoning_items
from videoreasoner.data.world.render import render
from videoreasoner.data.world.streams import scene_for, video_rng

log = logging.getLogger(__name__)
SOURCE = "synthetic-world/v1"
LONG_SOURCE = "synthetic-world-long/v1"


def records_for(cfg: WorldConfig, split: str, index: int) -> list[dict]:
    """All records of one video, in a fixed order."""
    scene, rng = scene_for(cfg, split, index)
    video_id = f"{split}-{index:05d}"
    items = [("reasoning", it) for it in reasoning_items(scene, rng, cfg)]
    if split in cfg.perception_splits:
        items += [("perception", it) for it in perception_items(scene, rng, cfg)]
    records = []
    for j, (kind, (problem_type, fields)) in enumerate(items):
        task = fields.pop("task")
        records.append(make_record(
            id=f"syn-{video_id}-{j:02d}-{task}", video=f"videos/{video_id}.mp4",
            duration=scene.duration, problem_type=problem_type, split=split, source=SOURCE,
            fps=scene.fps, width=scene.width, height=scene.height,
            meta={"kind": kind, "task": task, "video_id": video_id}, **fields))
    return records


def long_records_for(cfg: WorldConfig, split: str, index: int) -> list[dict]:
    """All records of one long clip, in a fixed order (meta.mode "long")."""
    scene = sample_long_scene(video_rng(cfg.seed, split, index, "long"), cfg)
    video_id = f"long-{split}-{index:05d}"
    records = []
    for j, (problem_type, fields) in enumerate(long_items(scene)):
        task = fields.pop("task")
        records.append(make_record(
            id=f"syn-{video_id}-{j:02d}-{task}", video=f"videos/{video_id}.mp4", duration=scene.duration,
            problem_type=problem_type, split=split, source=LONG_SOURCE, fps=scene.fps, width=scene.width,
            height=scene.height, meta={"kind": "reasoning", "task": task, "video_id": video_id, "mode": "long"},
            **fields))
    return records


def _make_video(job: tuple[WorldConfig, str, int, str, str]) -> list[dict]:
    cfg, split, index, out_dir, mode = job
    if mode == "long":
        scene = sample_long_scene(video_rng(cfg.seed, split, index, "long"), cfg)
        encode_mp4(render_long(scene), scene.fps, Path(out_dir) / f"videos/long-{split}-{index:05d}.mp4",
                   crf=cfg.crf)
        return long_records_for(cfg, split, index)
    scene, _ = scene_for(cfg, split, index)
    encode_mp4(render(scene), scene.fps, Path(out_dir) / f"videos/{split}-{index:05d}.mp4", crf=cfg.crf)
    return records_for(cfg, split, index)


def run(cfg: WorldConfig, out_dir: Path) -> dict:
    """Render every video into out_dir/videos and write out_dir/annotations.jsonl; return a summary."""
    t0 = time.perf_counter()
    jobs = [(cfg, split, i, str(out_dir), "default") for split in SPLITS for i in range(cfg.videos.get(split, 0))]
    jobs += [(cfg, split, i, str(out_dir), "long") for split in SPLITS for i in range(cfg.long.videos.get(split, 0))]
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    progress = dict(total=len(jobs), desc="generate", unit="video", mininterval=2)
    if cfg.workers > 1:
        with ProcessPoolExecutor(cfg.workers) as pool:
            for recs in tqdm(pool.map(_make_video, jobs, chunksize=16), **progress):
                records.extend(recs)
    else:
        for job in tqdm(jobs, **progress):
            records.extend(_make_video(job))
    write_jsonl(out_dir / "annotations.jsonl", records)
    seconds = time.perf_counter() - t0
    megabytes = sum(p.stat().st_size for p in (out_dir / "videos").glob("*.mp4")) / 1e6
    return {
        "videos": len(jobs), "records": len(records), "seconds": round(seconds, 2),
        "megabytes": round(megabytes, 2),
        "by_split": dict(Counter(r["split"] for r in records)),
        "by_problem_type": {s: dict(Counter(r["problem_type"] for r in records if r["split"] == s))
                            for s in SPLITS},
        "by_kind": dict(Counter(r["meta"]["kind"] for r in records)),
        "long_videos": sum(1 for job in jobs if job[4] == "long"),
    }


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from videoreasoner.core.params import section

    cfg = WorldConfig.from_params(section("data").get("synthetic", {}))
    with atomic_dir(SYNTHETIC_DIR) as tmp:
        summary = run(cfg, tmp)
    write_json(GENERATE_REPORT, summary)
    log.info("generated %s", json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())  # main returns the exit code (vr/cli.py relies on it)
