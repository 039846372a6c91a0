"""Where every stage's outputs live: the one place dvc.yaml and the code agree on (a test checks it).

All paths are relative to the workspace root (the directory holding params.yaml and dvc.yaml).
"""
from __future__ import annotations

from pathlib import Path

SYNTHETIC_DIR = Path("data/raw/synthetic")
SYNTHETIC_VIDEOS = SYNTHETIC_DIR / "videos"
SYNTHETIC_ANNOTATIONS = SYNTHETIC_DIR / "annotations.jsonl"
INTERIM_RECORDS = Path("data/interim/records.jsonl")
VALIDATED_DIR = Path("data/validated")
VALIDATION_REPORTS = Path("reports/validation")
VALIDATION_RESULT = VALIDATION_REPORTS / "result.json"
GENERATE_REPORT = Path("reports/generate/summary.json")
INGEST_REPORT = Path("reports/ingest/summary.json")
PARAMS_FILE = Path("params.yaml")
MODELS_BASE = Path("models/base")
PRETRAINED_BASE = Path("pretrained/tiny-video-base")  # shipped in git (pretrain stage, cache: false)
MODELS_SFT = Path("models/sft")
MODELS_RL = Path("models/rl")
BOOTSTRAP_REPORT = Path("reports/bootstrap/summary.json")
SFT_METRICS = Path("reports/sft/metrics.json")
RL_REPORTS = Path("reports/rl")  # metrics.json, curves.csv
TTS_REPORTS = Path("reports/tts")  # curve.csv, policy.json
EVAL_REPORTS = Path("reports/eval")  # metrics.json, summary.json, ladder.csv, report.html, predictions/
CHECKPOINTS = Path("checkpoints")  # crash-resume checkpoints, outside DVC outs: checkpoints/<stage>/


def split_file(split: str) -> Path:
    """data/validated/<split>.jsonl"""
    return VALIDATED_DIR / f"{split}.jsonl"
