"""Scaffolding shared by the training stages (bootstrap's alignment, sft, rl), written once.

- `parse_trl_config`: a params section -> TRL's own config class (SFTConfig, GRPOConfig), with the
  library defaults that silently change results (bf16, gradient checkpointing, ...) required explicitly.
- `prepare_checkpoints` / `last_checkpoint` / `finish_checkpoints`: crash-resume. Checkpoints live in
  checkpoints/<stage>/ (outside DVC outs); a fingerprint of everything that determines the run guards
  against resuming a run made with other params, data or base model; once the final weights are saved
  the checkpoints are removed, so a forced re-run trains from the start instead of "resuming" a
  finished run.
- `lora_config`: the optional PEFT adapter from params.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from videoreasoner.core.atomic import write_json
from videoreasoner.core.paths import (  # noqa: F401 (re-exported)
    BOOTSTRAP_REPORT,
    CHECKPOINTS,
    MODELS_BASE,
    MODELS_SFT,
    SFT_METRICS,
)

log = logging.getLogger(__name__)


FINGERPRINT_FILE = "run_fingerprint.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


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


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


_WHOLE_FILE_BYTES = 64 << 20   # weight files up to this size are hashed whole
_SAMPLE_BYTES, _SAMPLES = 1 << 20, 32


def _weights_sample(path: Path, size: int):
    """Bytes that identify a weight file: all of it when small, else its start (the safetensors header)
    and evenly spaced chunks, so a 15 GB checkpoint is identified in well under a second."""
    with open(path, "rb") as fh:
        if size <= _WHOLE_FILE_BYTES:
            yield fh.read()
            return
        for i in range(_SAMPLES):
            fh.seek((size - _SAMPLE_BYTES) * i // (_SAMPLES - 1))
            yield fh.read(_SAMPLE_BYTES)


def model_digest(model_dir: str | os.PathLike) -> str:
    """The identity of a checkpoint directory, stored as the model version beside every metric: config
    files' bytes, every file's size, and the weights' bytes (sampled in files over 64 MiB). Two training
    runs with the same settings but different weights get different versions."""
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        size = path.stat().st_size
        h.update(f"{path.relative_to(model_dir)}:{size}".encode())
        if path.suffix in (".json", ".jinja", ".txt"):
            h.update(path.read_bytes())
        elif path.suffix in (".safetensors", ".bin", ".pt"):
            for chunk in _weights_sample(path, size):
                h.update(chunk)
    return h.hexdigest()[:16]


def fingerprint(**parts: Any) -> str:
    """sha256 of the JSON of `parts` (params, data digests, base model digest)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def last_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The highest-step complete checkpoint (trainer_state.json is written last), or None."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for path in checkpoint_dir.iterdir():
        match = _CHECKPOINT_RE.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    for _, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            return path
        except (OSError, ValueError):
            log.warning("ignoring incomplete checkpoint %s", path)
    return None


def prepare_checkpoints(checkpoint_dir: str | os.PathLike, run_fingerprint: str) -> Path | None:
    """Return the checkpoint to resume from, if one was written by a run with the same fingerprint;
    otherwise clear `checkpoint_dir` (stale checkpoints of another configuration) and return None."""
    checkpoint_dir = Path(checkpoint_dir)
    marker = checkpoint_dir / FINGERPRINT_FILE
    if checkpoint_dir.exists():
        previous = json.loads(marker.read_text(encoding="utf-8"))["fingerprint"] if marker.is_file() else None
        if previous == run_fingerprint:
            resume = last_checkpoint(checkpoint_dir)
            if resume is not None:
                log.info("resuming from %s", resume)
                return resume
        else:
            log.info("clearing %s: checkpoints of another configuration", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"fingerprint": run_fingerprint})
    return None


def checkpoint_step(path: str | os.PathLike | None) -> int:
    """The global step of a checkpoint directory (0 for None)."""
    if path is None:
        return 0
    return int(_CHECKPOINT_RE.match(Path(path).name).group(1))


def finish_checkpoints(checkpoint_dir: str | os.PathLike) -> None:
    """Remove a stage's resume checkpoints after its final weights were saved."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
