"""TRL configuration from params, written once for the training stages (bootstrap's alignment, sft, rl).

- `parse_trl_config`: a params section -> TRL's own config class (SFTConfig, GRPOConfig), with the
  library defaults that silently change results (bf16, gradient checkpointing, ...) required explicitly.
- `freeze_vision_tower`: params `freeze_vision`.
- `lora_config`: the optional PEFT adapter from params.
"""
from __future__ import annotations

import os
from typing import Any


DEFAULT_REQUIRED = ("bf16", "fp16", "activation_checkpointing|gradient_checkpointing")


def parse_trl_config(config_cls, params: dict[str, Any], output_dir: str | os.PathLike,
                     required: tuple[str, ...] = DEFAULT_REQUIRED):
    """Parse `params` (TRL/transformers field names) with transformers' HfArgumentParser into `config_cls`.

    Unknown keys are an error naming the key. Keys in `required` ("a|b": either name) must be present in
    params because the library default differs from what a CPU float32 run needs (TRL: bf16 on, gradient
    checkpointing on; transformers 5.23 renamed the latter `activation_checkpointing`). output_dir is
    set by the stage, not by params; curves go to MLflow through videoreasoner.core.tracking, so report_to must be
    absent or "none".
    """
    from transformers import HfArgumentParser

    missing = [k for k in required if not any(name in params for name in k.split("|"))]
    if missing:
        raise ValueError(f"params: '{missing[0]}' must be set explicitly for {config_cls.__name__} "
                         f"(its library default changes results)")
    if "output_dir" in params:
        raise ValueError("params: 'output_dir' is set by the stage (checkpoints/<stage>/), remove it")
    if params.get("report_to", "none") not in ("none", [], ["none"]):
        raise ValueError("params: 'report_to' must be 'none'; the stage logs to MLflow itself")
    values = {**params, "output_dir": str(output_dir), "report_to": "none"}
    try:
        (config,) = HfArgumentParser(config_cls).parse_dict(values, allow_extra_keys=False)
    except ValueError as exc:
        raise ValueError(f"params for {config_cls.__name__}: {exc}") from None
    return config


def freeze_vision_tower(model) -> int:
    """Stop training the vision encoder and its merger (params `freeze_vision`, as Video-R1's
    `freeze_vision_modules` and Qwen2.5-VL's `tune_mm_vision: false`); return the parameters frozen.

    A pretrained tower is kept as it is. For the tiny default it is what lets the language model read the
    video at all: trained from random init, the tower's output grows about 70-fold (norm 0.8 -> 55) into a
    near-constant attention sink and the per-video content is lost (loss with real, zeroed or another
    clip's frames equal to 4 decimals); frozen, its random features keep that content."""
    tower = getattr(model, "visual", None) or getattr(getattr(model, "model", None), "visual", None)
    if tower is None:
        raise ValueError(f"freeze_vision: {type(model).__name__} has no vision tower (`visual`)")
    tower.requires_grad_(False)
    return sum(p.numel() for p in tower.parameters())


def lora_config(params: dict[str, Any] | None):
    """A peft.LoraConfig from params `lora` ({enabled: bool, **LoraConfig fields}); None when disabled."""
    params = dict(params or {})
    if not params.pop("enabled", False):
        return None
    from peft import LoraConfig

    params.setdefault("task_type", "CAUSAL_LM")
    return LoraConfig(**params)
