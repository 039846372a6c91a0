"""`sft` stage: supervised fine-tuning on the train split's chain-of-thought records (TRL SFTTrainer,
assistant-only loss, video decoded through videoreasoner/video/inputs).

Reads models/base, data/validated/{train,val}.jsonl, params `sft`, `video`, `compute`; writes models/sft
(merged weights + processor) and reports/sft/metrics.json; resumable checkpoints in checkpoints/sft/.
Run: `dvc repro sft` or `python -m stages.sft`. The training itself is videoreasoner/training/sft_trainer.py.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401
from videoreasoner.core.atomic import read_jsonl, write_json
from videoreasoner.core.machine import machine
from videoreasoner.core.tracking import stage_run, trainer_callback
from videoreasoner.data.selection import select_records, with_perception_replay
from videoreasoner.core.paths import CHECKPOINTS, MODELS_BASE, MODELS_SFT, SFT_METRICS
from videoreasoner.training.checkpoint_weights import is_partitioned, whole_state_dict
from videoreasoner.training.checkpoints import (file_digest, fingerprint, finish_checkpoints, model_digest,
                                                same_data_callback)
from videoreasoner.training.launch import ComputeConfig, check_torch_threads, launch_rank
from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
from videoreasoner.training.sft_data import VideoSFTCollator, loss_gap, to_dataset
from videoreasoner.training.sft_trainer import split_params, train, training_chat_template
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import count_video_tokens

log = logging.getLogger(__name__)


@dataclass
class SFTRun:
    """Everything the stage needs; paths relative to the working directory (the workspace root)."""

    sft: dict[str, Any]
    video: dict[str, Any] = field(default_factory=dict)
    compute: dict[str, Any] = field(default_factory=dict)
    base_dir: Path = MODELS_BASE
    train_file: Path = Path("data/validated/train.jsonl")
    val_file: Path | None = Path("data/validated/val.jsonl")
    video_root: Path = Path(".")
    out_dir: Path = MODELS_SFT
    metrics_path: Path = SFT_METRICS
    checkpoint_dir: Path = CHECKPOINTS / "sft"
    tracking: bool = True


def run(cfg: SFTRun) -> dict[str, Any]:
    """Train on the reasoning records of the train split, save to cfg.out_dir, return the metrics."""
    video_cfg = VideoConfig.from_params(cfg.video)
    own, _ = split_params(cfg.sft)
    threads = check_torch_threads(own.get("torch_threads"), "sft.torch_threads")
    records = with_perception_replay(read_jsonl(cfg.train_file), float(own.get("perception_replay", 0.0)),
                                     int(cfg.sft.get("seed", 0)))
    run_fp = fingerprint(sft=cfg.sft, video=cfg.video, compute=cfg.compute, train=file_digest(cfg.train_file),
                         base=model_digest(cfg.base_dir))
    dtype = cfg.compute.get("dtype", "float32")
    main_process = launch_rank() == 0  # with several processes only rank 0 tracks and writes
    if threads:  # the stage runs alone; its DataLoader worker decodes beside the step on torch's 1 thread
        import torch

        torch.set_num_threads(threads)
    with stage_run("sft", {"sft": cfg.sft, "video": cfg.video, "compute": cfg.compute},
                   cfg.tracking and main_process) as mlrun:
        model, processor = load_model_and_processor(cfg.base_dir, dtype)
        log.info("sft: %d records from %s (reasoning, plus perception_replay %s)", len(records), cfg.train_file,
                 own.get("perception_replay", 0.0))
        trl_params = {**cfg.sft, **ComputeConfig.from_params(cfg.compute).trainer_overrides()}
        with count_video_tokens() as meter:  # video tokens per training row, at the processor
            same_data = same_data_callback(records, f"training records of {cfg.train_file}")
            model, summary = train(model, processor, records, cfg.video_root, trl_params, video_cfg,
                                   cfg.checkpoint_dir, run_fp, callbacks=[trainer_callback(mlrun), same_data])
        if not meter.counts:  # DataLoader workers collate in their own processes: count a sample here
            with count_video_tokens() as meter:
                VideoSFTCollator(processor, video_cfg, chat_template=training_chat_template(processor))(
                    to_dataset(records[:8], cfg.video_root).to_list())
        summary.update({k: v for k, v in meter.summary().items() if v is not None})
        # Under ZeRO-3 a forward and the gathering of the weights are collectives: every rank runs them.
        partitioned = is_partitioned(model)
        n_gap = int(own.get("loss_gap_items", 0))
        if (main_process or partitioned) and n_gap and cfg.val_file and Path(cfg.val_file).is_file():
            val = select_records(read_jsonl(cfg.val_file), "reasoning")[:n_gap]
            collator = VideoSFTCollator(processor, video_cfg, chat_template=training_chat_template(processor))
            summary.update(loss_gap(model, collator, val, cfg.video_root))
        weights = whole_state_dict(model)  # a collective under ZeRO-3; None (the model's own) otherwise
        metrics = {**summary, "video": video_cfg.__dict__, "machine": machine()}
        if not main_process:
            return metrics
        save_model_and_processor(model, processor, cfg.out_dir, state_dict=weights)
        finish_checkpoints(cfg.checkpoint_dir)
        write_json(cfg.metrics_path, metrics)
        mlrun.log_metrics(summary)
        mlrun.log_artifact(cfg.metrics_path)
    log.info("sft: %d steps, final loss %.4f, %.1f s", summary["steps"], summary["final_loss"], summary["seconds"])
    return metrics


def main() -> int:
    from videoreasoner.core.params import section

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(SFTRun(sft=section("sft"), video=section("video"), compute=section("compute")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())  # main returns the exit code (vr/cli.py relies on it)
