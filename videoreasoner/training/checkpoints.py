"""Crash-resume bookkeeping of the training stages, and the identity of data and model files.

Checkpoints live in checkpoints/<stage>/ (outside DVC outs); a fingerprint of everything that determines
the run guards against resuming a run made with other params, data or base model; once the final weights
are saved the checkpoints are removed, so a forced re-run trains from the start instead of "resuming" a
finished run. (That a resume restores the weights exactly is videoreasoner/training/checkpoint_weights.py.)
With several processes, every rank must read the same items (`assert_same_data`, checked before the
first step).
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

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "run_fingerprint.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


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
    if checkpoint_dir.exists():
        if _written_by(checkpoint_dir, run_fingerprint):
            resume = last_checkpoint(checkpoint_dir)
            if resume is not None:
                log.info("resuming from %s", resume)
                return resume
        else:
            log.info("clearing %s: checkpoints of another configuration", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json(checkpoint_dir / FINGERPRINT_FILE, {"fingerprint": run_fingerprint})
    return None


def _written_by(checkpoint_dir: Path, run_fingerprint: str) -> bool:
    marker = checkpoint_dir / FINGERPRINT_FILE
    return marker.is_file() and json.loads(marker.read_text(encoding="utf-8"))["fingerprint"] == run_fingerprint


def resumable_checkpoint(checkpoint_dir: str | os.PathLike, run_fingerprint: str) -> Path | None:
    """The checkpoint prepare_checkpoints would resume from, without clearing or writing anything."""
    checkpoint_dir = Path(checkpoint_dir)
    return last_checkpoint(checkpoint_dir) if _written_by(checkpoint_dir, run_fingerprint) else None


def checkpoint_step(path: str | os.PathLike | None) -> int:
    """The global step of a checkpoint directory (0 for None)."""
    if path is None:
        return 0
    return int(_CHECKPOINT_RE.match(Path(path).name).group(1))


def finish_checkpoints(checkpoint_dir: str | os.PathLike) -> None:
    """Remove a stage's resume checkpoints after its final weights were saved."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


class RanksDisagree(RuntimeError):
    """The ranks of one training job read different data."""


def items_digest(records: list[dict]) -> str:
    """The identity of an item list: a hash of the records in order (ids, videos, answers, everything)."""
    return fingerprint(records=records)


def assert_same_data(digest: str, what: str) -> None:
    """The run-time invariant of multi-process training: every rank trains on the same item list.

    Data parallelism splits one list between the ranks by index (the distributed sampler); a rank that
    read another file, or another version of it (a node with a stale checkout, a split rewritten while
    the job started), would silently train on items no other rank sees. Raises RanksDisagree on every
    rank, naming each rank's digest, unless all ranks of the default process group passed the same
    `digest`; `what` names the data. A no-op without a process group or with one process. A collective:
    every rank must call it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    digests: list = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest)
    if len(set(digests)) > 1:
        raise RanksDisagree(f"the {len(digests)} ranks read different {what}: "
                            + ", ".join(f"rank {r} {d}" for r, d in enumerate(digests)))
    log.info("all %d ranks read the same %s (%s)", len(digests), what, digest)


def same_data_callback(records: list[dict], what: str):
    """A Trainer callback that runs `assert_same_data` on `records` at the start of training, once the
    trainer has joined the process group (before that there is no group to compare in)."""
    from transformers import TrainerCallback

    digest = items_digest(records)

    class SameDataCheck(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            assert_same_data(digest, what)

    return SameDataCheck()
