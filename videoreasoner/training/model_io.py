"""The one loader and saver of models: every stage gets its model and processor here.

Checkpoints are plain `save_pretrained` directories (safetensors, standard transformers classes): no
remote code. A directory may instead hold POINTER_FILE naming another checkpoint (a hub id or a local
path), which bootstrap writes for a large `model.base` instead of copying its weights.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from videoreasoner.core.atomic import atomic_dir, write_json

log = logging.getLogger(__name__)
POINTER_FILE = "base_pointer.json"
DTYPES = ("float32", "bfloat16", "float16")


def resolve(path: str | os.PathLike) -> str:
    """Follow POINTER_FILE (once) to the checkpoint it names; anything else is returned as is."""
    pointer = Path(path) / POINTER_FILE
    if pointer.is_file():
        target = json.loads(pointer.read_text(encoding="utf-8"))["source"]
        log.info("%s points to %s", path, target)
        return str(target)
    return str(path)


def torch_dtype(name: str):
    """'float32' -> torch.float32 (CPU default: float32; bf16 only where the hardware has it)."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r} (known: {DTYPES})")
    return getattr(torch, name)


def load_processor(path: str | os.PathLike, **processor_kwargs: Any):
    """The processor of a checkpoint (tokenizer, image and video processors), never with remote code."""
    from transformers import AutoProcessor

    _refuse_unsafe(processor_kwargs)
    return AutoProcessor.from_pretrained(resolve(path), **{**processor_kwargs, "trust_remote_code": False})


def _refuse_unsafe(kwargs: dict) -> None:
    """Loading options that would run a checkpoint's own code or unpickle weights are refused by name."""
    if kwargs.get("trust_remote_code") or kwargs.get("use_safetensors") is False:
        raise ValueError(f"not allowed: {sorted(k for k in ('trust_remote_code', 'use_safetensors') if k in kwargs)}"
                         " (models load from safetensors with the library's own classes only)")


def load_model_and_processor(path: str | os.PathLike, dtype: str = "float32", *,
                             device_map: Any = None, processor_kwargs: dict | None = None,
                             model_kwargs: dict | None = None):
    """Load (model, processor) from a `save_pretrained` directory or hub id (offline cache).

    dtype: one of DTYPES. The model class comes from the checkpoint's config through
    AutoModelForImageTextToText (Qwen2-VL, Qwen2.5-VL, ...); `use_safetensors=True` and no remote code.
    A checkpoint with missing, unexpected or reshaped keys is an error (CheckpointMismatch), not a warning.
    """
    from transformers import AutoModelForImageTextToText

    from videoreasoner.video.invariant import install_video_invariant

    source = resolve(path)
    _refuse_unsafe(model_kwargs or {})
    model, loading = AutoModelForImageTextToText.from_pretrained(
        source, dtype=torch_dtype(dtype), use_safetensors=True, trust_remote_code=False,
        device_map=device_map, output_loading_info=True, **(model_kwargs or {}))
    refuse_partial_load(source, loading)
    processor = load_processor(source, **(processor_kwargs or {}))
    install_video_invariant(model)  # every forward must carry as many video features as placeholders
    return model, processor


def refuse_partial_load(source: str, loading: dict[str, Any]) -> None:
    """Raise CheckpointMismatch when `from_pretrained` reported missing, unexpected or reshaped keys, or
    errors: transformers only warns and leaves those weights at their random initialisation."""
    from videoreasoner.training.checkpoint_weights import CheckpointMismatch

    problems = [f"{len(keys)} {kind.replace('_', ' ')}: {', '.join(sorted(map(str, keys))[:5])}"
                for kind, keys in sorted(loading.items()) if keys]
    if problems:
        raise CheckpointMismatch(f"{source} does not match its model class: " + "; ".join(problems))


def save_model_and_processor(model, processor, out_dir: str | os.PathLike,
                             extra_files: dict[str, Any] | None = None, state_dict: dict | None = None) -> Path:
    """Save a full checkpoint atomically (temporary sibling directory renamed into place).

    A PEFT model is merged into its base first, so every saved checkpoint loads without peft.
    extra_files: name -> JSON-serialisable object written beside the weights (e.g. build info).
    state_dict: the weights to write instead of the model's own (in-memory key names), e.g. the whole
    weights of a ZeRO-3-partitioned model (`checkpoint_weights.whole_state_dict`).
    """
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with atomic_dir(out_dir) as tmp:
        weights = {} if state_dict is None else {"state_dict": state_dict}  # only when given: plain saves stay plain
        model.save_pretrained(tmp, safe_serialization=True, **weights)
        processor.save_pretrained(tmp)
        for name, obj in (extra_files or {}).items():
            write_json(tmp / name, obj)
    log.info("saved model and processor to %s", out_dir)
    return Path(out_dir)


def save_pointer(source: str, out_dir: str | os.PathLike) -> Path:
    """Write a checkpoint directory that only names `source` (no weights copied)."""
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / POINTER_FILE, {"source": str(source)})
    return Path(out_dir)
