"""SFT training: TRL's SFTTrainer on video chat records, assistant-only loss, weight-exact resume.

The sft stage trains the reasoning records with it; bootstrap's perception alignment of the tiny base
uses the same function on the perception items, so both train one way.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from videoreasoner.training.checkpoints import checkpoint_step, prepare_checkpoints
from videoreasoner.training.launch import join_process_group
from videoreasoner.training.trl_config import freeze_vision_tower, lora_config, parse_trl_config
from videoreasoner.training.sft_data import VideoSFTCollator, to_dataset
from videoreasoner.video.config import VideoConfig

log = logging.getLogger(__name__)
# Keys of the `sft` section that are ours; every other key is an SFTConfig field.
OWN_KEYS = ("lora", "loss_gap_items", "freeze_vision", "perception_replay", "torch_threads")
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
          callbacks: Sequence = (), wrap_collator: Callable | None = None,
          trainer_class: type | None = None) -> tuple[Any, dict[str, Any]]:
    """Fine-tune `model` on `records` (targets from videoreasoner/answers/format via video_inputs).

    params: a section of SFTConfig fields plus OWN_KEYS (`lora`, `freeze_vision`). Resumes from the last complete
    checkpoint in `checkpoint_dir` when it was written with the same `run_fingerprint`.
    wrap_collator(collator) -> collator and trainer_class (an ExactResumeSFTTrainer subclass) let the
    pretrain stage add its dense targets and loss (videoreasoner/training/pretrain_trainer.py).
    Returns (trained model, merged if LoRA; summary with loss, steps, samples/s, seconds).
    """
    from trl import SFTConfig

    own, trl_params = split_params(params)
    join_process_group(trl_params, SFTConfig)  # before the config starts the group: collectives time out
    args = parse_trl_config(SFTConfig, trl_params, checkpoint_dir, required=REQUIRED_TRL_KEYS)
    collator = VideoSFTCollator(processor, video_cfg, assistant_only_loss=args.assistant_only_loss,
                                chat_template=training_chat_template(processor) if args.assistant_only_loss
                                else None, max_length=args.max_length)
    if wrap_collator is not None:
        collator = wrap_collator(collator)
    dataset = to_dataset(records, video_root)
    if args.train_sampling_strategy == "group_by_length":
        # TRL keeps only its vision signature columns; the sampler needs `length` (the collator ignores it).
        args.remove_unused_columns = False
        dataset = with_lengths(dataset, processor)
    if own.get("freeze_vision"):
        log.info("vision tower frozen: %d parameters", freeze_vision_tower(model))
    with args.main_process_first(local=False, desc=str(checkpoint_dir)):  # one rank clears stale checkpoints
        resume = prepare_checkpoints(checkpoint_dir, run_fingerprint)
    trainer = (trainer_class or exact_resume_sft_trainer())(model=model, args=args, data_collator=collator,
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
