"""`rl` stage: GRPO on video from models/sft on the train split's reasoning records (TRL GRPOTrainer,
video carried into every forward by videoreasoner/training/grpo_video, rewards from
videoreasoner/training/rewards only).

Reads models/sft, data/validated/train.jsonl, params `rl`, `rewards`, `video`, `compute`; writes
models/rl (weights + processor), reports/rl/metrics.json and reports/rl/curves.csv (one row per logged
step: reward, its components, KL, completion length); resumable checkpoints in checkpoints/rl/.
Run: `dvc repro rl`, `python -m videoreasoner.training.launch rl` or `python -m stages.rl`.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401  (telemetry opt-outs before any tool is imported)
from videoreasoner.core.atomic import atomic_path, read_jsonl, write_json
from videoreasoner.core.params import SectionDefaults
from videoreasoner.training.launch import ComputeConfig, check_torch_threads, join_process_group, launch_rank
from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
from videoreasoner.core.paths import MODELS_RL, RL_REPORTS
from videoreasoner.training.rewards import DEFAULT_REWARDS, build_rewards
from videoreasoner.core.schema import PROBLEM_TYPES
from videoreasoner.training.temporal_contrast import (
    TemporalContrastConfig,
    TemporalContrastGRPOTrainer,
    temporal_contrast_reward,
)
from videoreasoner.core.machine import machine
from videoreasoner.core.tracking import stage_run, trainer_callback
from videoreasoner.data.selection import select_records
from videoreasoner.core.paths import CHECKPOINTS, MODELS_SFT
from videoreasoner.training.checkpoints import (
    checkpoint_step,
    file_digest,
    fingerprint,
    finish_checkpoints,
    model_digest,
    prepare_checkpoints,
    same_data_callback,
)
from videoreasoner.training.checkpoint_weights import whole_state_dict
from videoreasoner.training.trl_config import freeze_vision_tower, lora_config, parse_trl_config
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import build_messages, count_video_tokens

log = logging.getLogger(__name__)

# Named algorithm presets: sets of TRL GRPOConfig options. Explicit keys in params `rl` win.
VARIANTS: dict[str, dict[str, Any]] = {
    # DeepSeekMath GRPO: per-sequence mean, group-std scaling, KL to the reference.
    "grpo": {"loss_type": "grpo", "scale_rewards": "group", "beta": 0.04, "epsilon": 0.2,
             "importance_sampling_level": "token", "mask_truncated_completions": False},
    # Dr. GRPO: no length or std normalisation, no KL.
    "dr_grpo": {"loss_type": "dr_grpo", "scale_rewards": "none", "beta": 0.0, "epsilon": 0.2,
                "importance_sampling_level": "token", "mask_truncated_completions": False},
    # DAPO: token-level loss, clip-higher, truncated completions masked, no KL (dynamic sampling:
    # skip_zero_variance_groups below drops zero-signal groups instead of over-sampling).
    "dapo": {"loss_type": "dapo", "scale_rewards": "group", "beta": 0.0, "epsilon": 0.2, "epsilon_high": 0.28,
             "importance_sampling_level": "token", "mask_truncated_completions": True},
    # GSPO: sequence-level importance ratio with its narrow clip range, per-sequence loss.
    "gspo": {"loss_type": "grpo", "scale_rewards": "group", "beta": 0.0, "epsilon": 3e-4, "epsilon_high": 4e-4,
             "importance_sampling_level": "sequence", "mask_truncated_completions": False},
}
# Keys of the `rl` section that are ours; every other key is a GRPOConfig field.
OWN_KEYS = ("variant", "temporal_contrast", "skip_zero_variance_groups", "lora", "max_records", "freeze_vision",
            "problem_types", "torch_threads")
REQUIRED_TRL_KEYS = ("bf16", "fp16", "activation_checkpointing|gradient_checkpointing", "loss_type", "beta",
                     "scale_rewards")
# Code defaults of our keys that have one (equal to params.yaml, tests/test_params_defaults.py); the
# others are null when absent. open: the section's other keys are GRPOConfig fields, TRL's to check.
OWN_DEFAULTS = SectionDefaults("rl", {"variant": "dr_grpo"}, open=True)
RECORD_COLUMNS = ("id", "video", "problem_type", "options", "duration", "fps")


def resolve_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(our keys, GRPOConfig keys): the variant's preset overlaid by the explicit keys of params `rl`."""
    own = {k: params[k] for k in OWN_KEYS if k in params}
    variant = own.setdefault("variant", OWN_DEFAULTS.values["variant"])
    if variant not in VARIANTS:
        raise ValueError(f"params rl.variant: unknown {variant!r} (known: {sorted(VARIANTS)})")
    explicit = {k: v for k, v in params.items() if k not in OWN_KEYS}
    check_torch_threads(own.get("torch_threads"), "rl.torch_threads")
    if own.get("skip_zero_variance_groups") is None:  # null: the variant decides (DAPO's dynamic sampling)
        own["skip_zero_variance_groups"] = variant == "dapo"
    return own, {**VARIANTS[variant], **explicit}


def rl_records(records: list[dict], problem_types: list[str] | None, max_records: int | None) -> list[dict]:
    """The train split's reasoning records that RL trains on: only `problem_types` (null: every type),
    then the first `max_records` (null: all). Selecting RL data by type is the usual recipe choice (e.g.
    only the types with a verifiable answer a dataset has). On the tiny default every type is best:
    numerical, temporal grounding and regression alone kept counting (0.61 vs 0.30-0.43 test accuracy)
    but gave up the spatio-temporal gains, and test AM stayed at sft's (-0.003 vs +0.026 with every type)."""
    if problem_types is not None:
        if isinstance(problem_types, str) or not problem_types:
            raise ValueError("params rl.problem_types: a non-empty list of problem types, or null for all")
        if unknown := sorted(set(problem_types) - set(PROBLEM_TYPES)):
            raise ValueError(f"params rl.problem_types: unknown {unknown[0]!r} (known: {list(PROBLEM_TYPES)})")
        records = [r for r in records if r.get("problem_type") in problem_types]
    selected = select_records(records, "reasoning")[:max_records]
    if not selected:
        raise ValueError(f"rl: no reasoning records of problem_types {problem_types} in the train split")
    return selected


def to_dataset(records: list[dict]):
    """A datasets.Dataset of GRPO prompts (video block as placeholder) plus the columns rewards read.

    `answer` changes type with the problem type, so it travels as JSON text (`answer_json`), which the
    rewards decode; `video` stays relative to the run's video root.
    """
    from datasets import Dataset

    if not records:
        raise ValueError("rl: no reasoning records in the train split")
    rows = [{**{k: r.get(k) for k in RECORD_COLUMNS}, "answer_json": json.dumps(r["answer"]),
             "prompt": build_messages(r, video=None, with_target=False)} for r in records]
    for row in rows:
        row["fps"] = None if row["fps"] is None else float(row["fps"])
        row["duration"] = float(row["duration"])
    return Dataset.from_list(rows)


CURVE_KEYS = {"reward": "reward", "reward_std": "reward_std", "kl": "kl", "entropy": "entropy",
              "loss": "loss", "completions/mean_length": "completion_length",
              "frac_reward_zero_std": "frac_reward_zero_std", "frac_groups_skipped": "frac_groups_skipped",
              "temporal_contrast/shuffled_accuracy": "shuffled_accuracy"}


def curves(log_history: list[dict[str, Any]], reward_names: list[str]) -> list[dict[str, Any]]:
    """One row per logged step with a reward: step, reward, each reward component (mean), KL, ..."""
    keys = {**CURVE_KEYS, **{f"rewards/{n}/mean": f"reward_{n}" for n in reward_names}}
    rows = []
    for entry in log_history:
        if "reward" not in entry:
            continue
        rows.append({"step": entry["step"], **{name: entry.get(key) for key, name in keys.items()}})
    return rows


def write_curves(path: Path, rows: list[dict[str, Any]]) -> None:
    """CSV for `dvc plots` (x: step); empty cells where a component did not apply."""
    import csv

    columns = ["step"] + sorted({k for row in rows for k in row if k != "step"})
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})


@dataclass
class RLRun:
    """Everything the stage needs; paths relative to the working directory (the workspace root)."""

    rl: dict[str, Any]
    rewards: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_REWARDS))
    video: dict[str, Any] = field(default_factory=dict)
    compute: dict[str, Any] = field(default_factory=dict)
    model_dir: Path = MODELS_SFT
    train_file: Path = Path("data/validated/train.jsonl")
    video_root: Path = Path(".")
    out_dir: Path = MODELS_RL
    reports_dir: Path = RL_REPORTS
    checkpoint_dir: Path = CHECKPOINTS / "rl"
    tracking: bool = True


def run(cfg: RLRun) -> dict[str, Any]:
    """GRPO from cfg.model_dir on the reasoning records; save to cfg.out_dir; return the metrics."""
    from trl import GRPOConfig

    from videoreasoner.training.grpo_video import VideoGRPOTrainer

    own, trl_params = resolve_params(cfg.rl)
    if "reward_weights" in trl_params:
        raise ValueError("params rl.reward_weights: weights belong to params `rewards` ({name, weight, kwargs})")
    compute = ComputeConfig.from_params(cfg.compute)
    trl_params = {**trl_params, **compute.trainer_overrides()}
    join_process_group(trl_params, GRPOConfig)  # before the config starts the group: collectives time out
    video_cfg = VideoConfig.from_params(cfg.video)
    contrast = TemporalContrastConfig.from_params(own.get("temporal_contrast"))
    records = rl_records(read_jsonl(cfg.train_file), own.get("problem_types"), own.get("max_records"))
    funcs, weights = build_rewards(cfg.rewards)
    if contrast.enabled:
        funcs, weights = [*funcs, temporal_contrast_reward(funcs, contrast)], [*weights, 1.0]
    run_fp = fingerprint(rl=cfg.rl, rewards=cfg.rewards, video=cfg.video, compute=cfg.compute,
                         train=file_digest(cfg.train_file), model=model_digest(cfg.model_dir))
    params = {"rl": cfg.rl, "rewards": cfg.rewards, "video": cfg.video, "compute": cfg.compute}
    if own.get("torch_threads"):  # rl has no DataLoader worker: its process may use what sft's worker took
        import torch

        torch.set_num_threads(int(own["torch_threads"]))
    with stage_run("rl", params, cfg.tracking and launch_rank() == 0) as mlrun:  # one MLflow run, rank 0's
        model, processor = load_model_and_processor(cfg.model_dir, compute.dtype)
        # The config only after the model: a live ZeRO-3 config makes from_pretrained load under
        # zero.Init, and transformers 5.23 then reverts that load's weight renamings on save into
        # `model.model.*` names, a layout no other save writes. Loaded whole, the model is partitioned
        # when DeepSpeed wraps it, as in sft.
        args = parse_trl_config(GRPOConfig, trl_params, cfg.checkpoint_dir, required=REQUIRED_TRL_KEYS)
        args.reward_weights = weights
        if own.get("freeze_vision"):
            log.info("vision tower frozen: %d parameters", freeze_vision_tower(model))
        log.info("rl: %d reasoning records, variant %s, %d reward functions", len(records),
                 own["variant"], len(funcs))
        with args.main_process_first(local=False, desc="checkpoints/rl"):  # one process clears stale ones
            resume = prepare_checkpoints(cfg.checkpoint_dir, run_fp)
        same_data = same_data_callback(records, f"RL records of {cfg.train_file}")
        kwargs = dict(model=model, reward_funcs=funcs, args=args, train_dataset=to_dataset(records),
                      processing_class=processor, peft_config=lora_config(own.get("lora")),
                      callbacks=[trainer_callback(mlrun), same_data],
                      video_config=video_cfg, video_root=cfg.video_root,
                      skip_zero_variance_groups=bool(own["skip_zero_variance_groups"]))
        trainer = (TemporalContrastGRPOTrainer(**kwargs, temporal_contrast=contrast) if contrast.enabled
                   else VideoGRPOTrainer(**kwargs))
        t0 = time.perf_counter()
        with count_video_tokens() as meter:  # video tokens per prompt row, at the processor
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        seconds = time.perf_counter() - t0
        rows = curves(trainer.state.log_history, [f.__name__ for f in funcs])
        summary = _summary(trainer, result, rows, resume, seconds, len(records), own)
        summary.update({k: v for k, v in meter.summary().items() if v is not None})
        _save_final(trainer, processor, cfg.out_dir)
        if trainer.is_world_process_zero():
            write_curves(cfg.reports_dir / "curves.csv", rows)
            metrics = {**summary, "video": video_cfg.__dict__, "machine": machine()}
            write_json(cfg.reports_dir / "metrics.json", metrics)
            mlrun.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
            mlrun.log_artifact(cfg.reports_dir / "curves.csv")
            mlrun.log_artifact(cfg.reports_dir / "metrics.json")
            finish_checkpoints(cfg.checkpoint_dir)  # final weights saved: nothing left to resume
    log.info("rl: %d steps (%.3f steps/s), final reward %s", summary["steps"], summary["steps_per_second"],
             summary["final_reward"])
    return summary


def _save_final(trainer, processor, out_dir: Path) -> None:
    """Final weights + processor, atomically, from process 0, through model_io like every other stage's
    model. Under ZeRO-3 every process first joins in gathering the partitioned weights whole
    (`whole_state_dict`, as sft does): one save path, and so one file layout, for every engine."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    weights = whole_state_dict(model)  # a collective under ZeRO-3; None (the model's own) otherwise
    if trainer.is_world_process_zero():
        save_model_and_processor(model, processor, out_dir, state_dict=weights)


def _summary(trainer, result, rows, resume, seconds: float, n_records: int, own: dict) -> dict[str, Any]:
    steps = int(trainer.state.global_step)
    resumed = checkpoint_step(resume)
    last = rows[-1] if rows else {}
    return {
        "variant": own["variant"],
        "temporal_contrast": bool(TemporalContrastConfig.from_params(own.get("temporal_contrast")).enabled),
        "steps": steps,
        "resumed_from_step": resumed,
        "steps_this_run": steps - resumed,
        "steps_per_second": round((steps - resumed) / seconds, 4) if seconds > 0 else 0.0,
        "seconds": round(seconds, 2),
        "train_loss": float(result.training_loss),
        "final_reward": last.get("reward"),
        "mean_reward": (sum(r["reward"] for r in rows) / len(rows)) if rows else None,
        "records": n_records,
        "problem_types": own.get("problem_types"),
        "deepspeed_zero_stage": (trainer.accelerator.state.deepspeed_plugin.zero_stage
                                 if trainer.is_deepspeed_enabled else None),
    }


def main() -> int:
    from videoreasoner.core.params import section

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(RLRun(rl=section("rl"), rewards=section("rewards"), video=section("video"), compute=section("compute")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())  # main returns the exit code (vr/cli.py relies on it)
