"""`pretrain` stage: train the tiny Qwen2.5-VL from scratch (vision tower, merger and language model) on the
train split's perception items, and write the shipped base (weights, tokenizer, processor, manifest).

First a language warm-up: text-only option look-ups, the language model alone, until it finds a word among
the options and answers its letter (videoreasoner/training/language_warmup.py). Then the video phase:
direct answers only (colour, shape, count, caption, option look-up, first/last, when visible, where at
t; no chain of thought; with `binding_items` repeats of a shape-first caption per clip and the colour and
shape questions asked about every shape, videoreasoner/training/binding_items.py), plus a dense loss on
every video token from the world's exact per-frame ground truth (videoreasoner/training/pretrain_trainer.py).
The result is gated on the val split's perception items against blank frames
(videoreasoner/inference/perception_probe.py) and described in its manifest
(videoreasoner/training/base_manifest.py). The vision parts train at `vision_learning_rate`, the language
model at `learning_rate` (low, so the look-up skill stays). Outside the default run (frozen in
dvc.yaml): the default loads the shipped output through `model.base`. Reads params `pretrain`, `model.tiny`, `video`, `compute`,
`data.synthetic`; run: `python -m stages.pretrain` (or `vr pretrain`), about 45 minutes on 2 cores.
"""
from __future__ import annotations

import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401
from videoreasoner.core.atomic import atomic_dir, read_jsonl, write_json
from videoreasoner.core.paths import CHECKPOINTS, PRETRAINED_BASE, split_file
from videoreasoner.core.machine import machine
from videoreasoner.core.tracking import git_commit, stage_run, trainer_callback
from videoreasoner.data.selection import select_records
from videoreasoner.data.world.config import WorldConfig
from videoreasoner.data.world.questions import inventory
from videoreasoner.data.world.streams import parse_video_id, scene_for
from videoreasoner.inference.engines import FrameSource, HFEngine
from videoreasoner.inference.perception_probe import probe
from videoreasoner.training.base_manifest import MANIFEST, file_hashes, params_digest, records_digest
from videoreasoner.training.binding_items import binding_items
from videoreasoner.training.checkpoints import (file_digest, fingerprint, finish_checkpoints,
                                                resumable_checkpoint)
from videoreasoner.training.language_warmup import LookupTask, warm_up
from videoreasoner.training.launch import ComputeConfig
from videoreasoner.training.model_io import load_model_and_processor
from videoreasoner.training.pretrain_trainer import DenseTargetCollator, attach_head, dense_trainer_class, detach_head
from videoreasoner.training.sft_data import video_path
from videoreasoner.training.sft_trainer import train
from videoreasoner.training.tiny_model import TinyConfig, build_tiny
from videoreasoner.video.config import VideoConfig

log = logging.getLogger(__name__)
OWN_KEYS = ("dense_weight", "storage_dtype", "gates", "probe_items", "language_warmup", "vision_learning_rate",
            "binding_items")
COMMAND = "python -m stages.pretrain"


@dataclass
class PretrainRun:
    """params `pretrain` (TRL SFTConfig fields + OWN_KEYS), `model.tiny`, `video`, `compute`,
    `data.synthetic`; paths from the workspace."""

    pretrain: dict[str, Any]
    tiny: dict[str, Any]
    video: dict[str, Any]
    world: dict[str, Any]
    compute: dict[str, Any] = field(default_factory=dict)
    train_file: Path = split_file("train")
    val_file: Path = split_file("val")
    video_root: Path = Path(".")
    out_dir: Path = PRETRAINED_BASE
    checkpoint_dir: Path = CHECKPOINTS / "pretrain"
    tracking: bool = True


def scenes_by_path(records: list[dict], world: WorldConfig, video_root: Path) -> dict[str, Any]:
    """Absolute video path -> the world's scene, rebuilt from `data.synthetic`. Each rebuilt scene must
    name the objects the records' captions name; a mismatch (params changed since generate) raises."""
    scenes: dict[str, Any] = {}
    for record in records:
        path = video_path(record, video_root)
        if path not in scenes:
            scenes[path] = scene_for(world, *parse_video_id((record.get("meta") or {}).get("video_id")))[0]
        if (record.get("meta") or {}).get("task") == "caption_line" and record["answer"] != inventory(scenes[path]):
            raise ValueError(f"record {record['id']}: caption {record['answer']!r} but params data.synthetic rebuild "
                             f"{inventory(scenes[path])!r}: the data was generated with other params")
    return scenes


def _params_sections(cfg: PretrainRun) -> dict[str, Any]:
    return {"pretrain": cfg.pretrain, "model.tiny": cfg.tiny, "video": cfg.video, "data.synthetic": cfg.world}


def language_warmup(model, processor, world: WorldConfig, settings: dict[str, Any], mlrun, *, resume, seed: int):
    """Text-only option look-ups before the video (videoreasoner/training/language_warmup.py).
    settings: {max_steps, target_accuracy, learning_rate, batch_size, seed (of the look-ups' draw;
    default the stage's)}; no max_steps: none. Skipped when the video phase resumes from a checkpoint:
    that holds every weight, the warm-up's included. A target not reached is a warning here and a failed
    option look-up gate at the end."""
    max_steps = int(settings.get("max_steps") or 0)
    if max_steps <= 0:
        return {"steps": 0}
    if resume is not None:
        log.info("language warm-up skipped: the video phase resumes from %s, which holds its weights", resume)
        return {"resumed_from": resume.name}
    seed = int(settings.get("seed", seed))
    task = LookupTask(processor.tokenizer, list(world.shapes), list(world.colours), seed=seed)
    result = warm_up(model, task, steps=max_steps, learning_rate=float(settings["learning_rate"]),
                     batch_size=int(settings.get("batch_size", 32)), seed=seed,
                     target_accuracy=settings.get("target_accuracy"),
                     on_eval=lambda step, acc: mlrun.log_metrics({"warmup/lookup_accuracy": acc}, step=step))
    log.info("language warm-up: %d steps, look-up accuracy %.3f (chance 0.25) in %.0f s", result["steps"],
             result["accuracy"], result["seconds"])
    if result["reached"] is False:
        log.warning("language warm-up: look-up accuracy %.3f after %d steps, below its target %s: multiple "
                    "choice will stay near chance", result["accuracy"], result["steps"], settings["target_accuracy"])
    return {**result, "seed": seed}


def run(cfg: PretrainRun) -> dict[str, Any]:
    """Train, save (storage dtype), reload the saved files, gate them, write the manifest; return it."""
    import torch
    import transformers
    import trl

    params = dict(cfg.pretrain or {})  # TRL's parser names any unknown key
    own = {k: params[k] for k in OWN_KEYS if k in params}
    trl_params = {k: v for k, v in params.items() if k not in OWN_KEYS}
    seed = int(params.get("seed", 0))
    t0, commit = time.perf_counter(), git_commit()  # the code that trains, not whatever HEAD is at the end
    video_cfg, world = VideoConfig.from_params(cfg.video), WorldConfig.from_params(cfg.world)
    tiny_cfg = TinyConfig.from_params(cfg.tiny)
    records = read_jsonl(cfg.train_file)
    perception = select_records(records, "perception")
    if not perception:
        raise ValueError(f"{cfg.train_file}: no perception items (data.synthetic.perception_splits must include train)")
    scenes = scenes_by_path(perception, world, cfg.video_root)
    repeats = int(own.get("binding_items") or 0)
    binding = binding_items(perception, scenes, cfg.video_root) * repeats if repeats > 0 else []
    with stage_run("pretrain", _params_sections(cfg), cfg.tracking) as mlrun:
        model, processor = build_tiny(tiny_cfg, records, video_cfg)
        run_fp = fingerprint(sections=_params_sections(cfg), compute=cfg.compute, train=file_digest(cfg.train_file))
        warmup = language_warmup(model, processor, world, own.get("language_warmup") or {}, mlrun, seed=seed,
                                 resume=resumable_checkpoint(cfg.checkpoint_dir, run_fp))
        attach_head(model)
        trl_params = {**trl_params, **ComputeConfig.from_params(cfg.compute).trainer_overrides()}
        model, result = train(model, processor, perception + binding, cfg.video_root, trl_params, video_cfg,
                              cfg.checkpoint_dir, run_fp, callbacks=[trainer_callback(mlrun)],
                              wrap_collator=lambda c: DenseTargetCollator(c, scenes),
                              trainer_class=dense_trainer_class(own.get("dense_weight", 1.0),
                                                                own.get("vision_learning_rate")))
        detach_head(model)
        n_params = sum(p.numel() for p in model.parameters())
        storage = getattr(torch, own.get("storage_dtype", "float16"))
        with atomic_dir(cfg.out_dir) as tmp:
            model.to(storage).save_pretrained(tmp, safe_serialization=True)
            processor.save_pretrained(tmp)
            shipped, shipped_processor = load_model_and_processor(tmp, "float32")  # gate what ships
            engine = HFEngine(shipped, shipped_processor, FrameSource(video_cfg, cfg.video_root), progress=False)
            val = select_records(read_jsonl(cfg.val_file), "perception")[:own.get("probe_items") or None]
            perception_result = probe(engine, val, gates=own.get("gates"), seed=seed)
            manifest = {
                "format": 1, "command": COMMAND, "git_commit": commit,
                "data": {"train_records": records_digest(perception), "n_train_records": len(perception),
                         "val_records": records_digest(val), "n_val_records": len(val),
                         "n_binding_items": len(binding)},
                "params": {"digest": params_digest(_params_sections(cfg)), "sections": _params_sections(cfg)},
                "compute": cfg.compute, "parameters": n_params, "storage_dtype": str(storage).replace("torch.", ""),
                "language_warmup": warmup, "training": result, "perception": perception_result,
                "machine": machine(),
                "versions": {"python": platform.python_version(), "torch": torch.__version__,
                             "transformers": transformers.__version__, "trl": trl.__version__},
                "seconds": round(time.perf_counter() - t0, 1),
            }
            manifest["files"] = file_hashes(tmp)
            write_json(tmp / MANIFEST, manifest)
        finish_checkpoints(cfg.checkpoint_dir)
        summary = {"parameters": n_params, "seconds": manifest["seconds"], "passed": perception_result["passed"],
                   **{f"{t}_{k}": row[k] for t, row in perception_result["tasks"].items() for k in ("video", "blank")}}
        mlrun.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
    for task, row in perception_result["tasks"].items():
        log.info("perception %-22s %s %.3f %s vs blank %.3f (gap %s)%s", task, row["measure"], row["video"],
                 row["video_ci95"], row["blank"], row["gap_ci95"], "" if row["passed"] is not False else "  FAILED")
    return manifest


def main() -> int:
    from videoreasoner.core.params import section

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model, data = section("model"), section("data")
    manifest = run(PretrainRun(pretrain=section("pretrain"), tiny=model.get("tiny") or {}, video=section("video"),
                               world=data.get("synthetic") or {}, compute=section("compute")))
    if not manifest["perception"]["passed"]:
        log.error("perception gates failed: %s (the base was written; see %s)",
                  manifest["perception"]["failed"], PRETRAINED_BASE / MANIFEST)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())  # main returns the exit code (vr/cli.py relies on it)
