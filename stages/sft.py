"""`sft` stage: supervised fine-tuning on the train split's chain-of-thought records (TRL SFTTrainer,
assistant-only loss, video decoded through videoreasoner/video/inputs).

Reads models/base, data/validated/{train,val}.jsonl, params `sft`, `video`, `compute`; writes models/sft
(merged weights + processor) and reports/sft/metrics.json; resumable checkpoints in checkpoints/sft/.
Run: `dvc repro sft` or `python -m stages.sft`. `train()` is also bootstrap's perception alignment.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401
from videoreasoner.core.atomic import read_jsonl, write_json
from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
from videoreasoner.training.sft_data import VideoSFTCollator, loss_gap, select_records, to_dataset
from videoreasoner.training.launch import ComputeConfig
from videoreasoner.core.tracking import stage_run, trainer_callback
from videoreasoner.training.common import (
    CHECKPOINTS, MODELS_BASE, MODELS_SFT, SFT_METRICS, checkpoint_step, file_digest, finish_checkpoints,
    fingerprint, freeze_vision_tower, lora_config, model_digest, parse_trl_config, prepare_checkpoints,
)
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import count_video_tokens

log = logging.getLogger(__name__)
# Keys of the `sft` section that are ours; every other key is an SFTConfig field.
OWN_KEYS = ("lora", "loss_gap_items", "freeze_vision")
REQUIRED_TRL_KEYS = ("bf16", "fp16", "activation_checkpointing|gradient_checkpointing", "assistant_only_loss")


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(our keys, SFTConfig keys) of a params section."""
    own = {k: v for k, v in params.items() if k in OWN_KEYS}
    return own, {k: v for k, v in params.items() if k not in OWN_KEYS}


def training_chat_template(processor) -> str | None:
    """None when the processor's template has `{% generation %}` markers (the tiny default); else TRL's
    training variant of it (hub models), so the assistant-only mask is never silently empty."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(processor.chat_template):
        return None
    template = get_training_chat_template(processor)
    if template is None:
        raise ValueError("assistant-only loss needs a chat template with {% generation %} markers; "
                         "TRL has no training template for this processor")
    return template


def with_lengths(dataset, processor):
    """Add the `length` column (text tokens per row) that transformers' `train_sampling_strategy:
    group_by_length` sorts on: batches of similar length waste far less compute on padding (the tube
    targets are 5x longer than the rest). The video adds the same token count to every row."""
    def text(content) -> str:
        blocks = content if isinstance(content, list) else [content]
        return " ".join((b.get("text") or "") if isinstance(b, dict) else str(b or "") for b in blocks)

    texts = [" ".join(text(m["content"]) for m in row) for row in dataset["messages"]]
    lengths = [len(ids) for ids in processor.tokenizer(texts)["input_ids"]]
    return dataset.add_column("length", lengths)


def exact_resume_sft_trainer():
    """TRL's SFTTrainer whose resume loads every weight of the checkpoint or fails (see
    videoreasoner/training/checkpoint_weights.py: the stock resume silently loaded nothing)."""
    from trl import SFTTrainer

    from videoreasoner.training.checkpoint_weights import ExactResumeMixin

    return type("ExactResumeSFTTrainer", (ExactResumeMixin, SFTTrainer), {})


def train(model, processor, records: list[dict], video_root: str | Path, params: dict[str, Any],
          video_cfg: VideoConfig, checkpoint_dir: str | Path, run_fingerprint: str,
          callbacks: Sequence = ()) -> tuple[Any, dict[str, Any]]:
    """Fine-tune `model` on `records` (targets from videoreasoner/answers/format via video_inputs).

    params: a section of SFTConfig fields plus OWN_KEYS (`lora`, `freeze_vision`). Resumes from the last complete
    checkpoint in `checkpoint_dir` when it was written with the same `run_fingerprint`.
    Returns (trained model, merged if LoRA; summary with loss, steps, samples/s, seconds).
    """
    from trl import SFTConfig

    own, trl_params = split_params(params)
    args = parse_trl_config(SFTConfig, trl_params, checkpoint_dir, required=REQUIRED_TRL_KEYS)
    collator = VideoSFTCollator(processor, video_cfg, assistant_only_loss=args.assistant_only_loss,
                                chat_template=training_chat_template(processor) if args.assistant_only_loss
                                else None, max_length=args.max_length)
    dataset = to_dataset(records, video_root)
    if args.train_sampling_strategy == "group_by_length":
        # TRL keeps only its vision signature columns; the sampler needs `length` (the collator ignores it).
        args.remove_unused_columns = False
        dataset = with_lengths(dataset, processor)
    if own.get("freeze_vision"):
        log.info("vision tower frozen: %d parameters", freeze_vision_tower(model))
    resume = prepare_checkpoints(checkpoint_dir, run_fingerprint)
    trainer = exact_resume_sft_trainer()(model=model, args=args, data_collator=collator,
                         train_dataset=dataset, processing_class=processor,
                         peft_config=lora_config(own.get("lora")), callbacks=list(callbacks))
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - t0
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    summary = {
        "train_loss": float(result.training_loss),
        "final_loss": float(losses[-1]) if losses else float("nan"),
        "steps": int(trainer.state.global_step),
        "resumed_from_step": checkpoint_step(resume),
        "samples_per_second": float(result.metrics.get("train_samples_per_second", 0.0)),
        "steps_per_second": float(result.metrics.get("train_steps_per_second", 0.0)),
        "seconds": round(seconds, 2),
        "records": len(records),
    }
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model, summary


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
    records = select_records(read_jsonl(cfg.train_file), "reasoning")
    own, _ = split_params(cfg.sft)
    run_fp = fingerprint(sft=cfg.sft, video=cfg.video, compute=cfg.compute, train=file_digest(cfg.train_file),
                         base=model_digest(cfg.base_dir))
    dtype = cfg.compute.get("dtype", "float32")
    with stage_run("sft", {"sft": cfg.sft, "video": cfg.video, "compute": cfg.compute}, cfg.tracking) as mlrun:
        model, processor = load_model_and_processor(cfg.base_dir, dtype)
        log.info("sft: %d reasoning records from %s", len(records), cfg.train_file)
        trl_params = {**cfg.sft, **ComputeConfig.from_params(cfg.compute).trainer_overrides()}
        with count_video_tokens() as meter:  # video tokens per training row, at the processor
            model, summary = train(model, processor, records, cfg.video_root, trl_params, video_cfg,
                                   cfg.checkpoint_dir, run_fp, callbacks=[trainer_callback(mlrun)])
        if not meter.counts:  # DataLoader workers collate in their own processes: count a sample here
            with count_video_tokens() as meter:
                VideoSFTCollator(processor, video_cfg, chat_template=training_chat_template(processor))(
                    to_dataset(records[:8], cfg.video_root).to_list())
        summary.update({k: v for k, v in meter.summary().items() if v is not None})
        n_gap = int(own.get("loss_gap_items", 0))
        if n_gap and cfg.val_file and Path(cfg.val_file).is_file():
            val = select_records(read_jsonl(cfg.val_file), "reasoning")[:n_gap]
            collator = VideoSFTCollator(processor, video_cfg, chat_template=training_chat_template(processor))
            summary.update(loss_gap(model, collator, val, cfg.video_root))
        save_model_and_processor(model, processor, cfg.out_dir)
        finish_checkpoints(cfg.checkpoint_dir)
        metrics = {**summary, "video": video_cfg.__dict__}
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
