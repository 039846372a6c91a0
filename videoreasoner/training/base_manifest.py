"""The shipped base's manifest: what it was trained on, with which settings, and what it can see.

`manifest.json` beside the weights holds
- `files`: sha256 of every other file in the directory (weights, tokenizer, processor);
- `data`: a digest of the training records (their problem type, question, options, answer, task and
  clip id: fields the importers do not rewrite, so a regenerated world can be checked against it);
- `params`: a digest of the params sections that decide the weights, and the sections themselves;
- `command`, `git_commit`, library versions, parameter count, training summary and seconds;
- `perception`: the per-task gates of videoreasoner/inference/perception_probe.py.
`check_files` recomputes the file hashes; tests also recompute the data and params digests from the
world generator and params.yaml, so a change that makes the shipped base stale fails loudly.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
RECORD_FIELDS = ("problem_type", "question", "options", "answer")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def records_digest(records: Iterable[dict]) -> str:
    """sha256 over the records' content fields, task and clip id, in order."""
    h = hashlib.sha256()
    for record in records:
        meta = record.get("meta") or {}
        row = {k: record.get(k) for k in RECORD_FIELDS} | {"task": meta.get("task"), "video_id": meta.get("video_id")}
        h.update(_canonical(row) + b"\n")
    return h.hexdigest()


def params_digest(sections: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of {section name: params}."""
    return _sha256(_canonical(sections))


def file_hashes(directory: str | Path) -> dict[str, str]:
    """sha256 of every file under `directory` except the manifest, by relative path."""
    directory = Path(directory)
    return {str(p.relative_to(directory)): _sha256(p.read_bytes())
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST}


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest; the directory is not a base written by the pretrain stage")
    return json.loads(path.read_text())


def check_files(directory: str | Path) -> None:
    """Raise naming every file whose bytes differ from the manifest, or that is missing or extra."""
    expected = read_manifest(directory)["files"]
    actual = file_hashes(directory)
    problems = [f"{name}: {'missing' if name not in actual else 'changed'}" for name in sorted(expected)
                if actual.get(name) != expected[name]]
    problems += [f"{name}: not in the manifest" for name in sorted(set(actual) - set(expected))]
    if problems:
        raise ValueError(f"{directory}: files differ from {MANIFEST}: " + "; ".join(problems))
