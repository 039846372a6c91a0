"""`bootstrap` stage: the base model every later stage starts from, in models/base/.

`model.base` is the shipped pretrained tiny base by default (pretrained/tiny-video-base, written by the
pretrain stage): a local path, loaded with the one loader like a hub id, after its files are checked
against its manifest. `model.base: tiny`: train a BPE tokenizer on the train split's text, build a small
Qwen2.5-VL and the standard processor, then run a short perception alignment (direct answers to the
train split's perception items) with the sft stage's training code (videoreasoner/training/sft_trainer.py).
Any other value is a hub id or a local path: nothing is built; the model is loaded with the one loader
and saved (or pointed to).
Reads params `model`, `video`, `compute` and data/validated/train.jsonl; run: `python -m stages.bootstrap`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401
from videoreasoner.core.atomic import read_jsonl, write_json
from videoreasoner.core.params import check_keys
from videoreasoner.core.tracking import stage_run, trainer_callback
from videoreasoner.data.selection import select_records
from videoreasoner.core.paths import BOOTSTRAP_REPORT, CHECKPOINTS, MODELS_BASE
from videoreasoner.training.base_manifest import MANIFEST, check_files, read_manifest
from videoreasoner.training.checkpoints import file_digest, fingerprint, finish_checkpoints
from videoreasoner.training.launch import ComputeConfig
from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor, save_pointer
from videoreasoner.training.sft_trainer import train
from videoreasoner.training.tiny_model import TinyConfig, build_tiny
from videoreasoner.video.config import VideoConfig

log = logging.getLogger(__name__)
TINY = "tiny"
OWN_KEYS = ("base", "tiny", "alignment", "copy_base")


@dataclass
class BootstrapRun:
    """params `model` ({base, tiny, alignment, copy_base}), `video`, `compute`; paths from the workspace."""

    model: dict[str, Any]
    video: dict[str, Any] = field(default_factory=dict)
    compute: dict[str, Any] = field(default_factory=dict)
    train_file: Path = Path("data/validated/train.jsonl")
    video_root: Path = Path(".")
    out_dir: Path = MODELS_BASE
    report_path: Path = BOOTSTRAP_REPORT
    checkpoint_dir: Path = CHECKPOINTS / "bootstrap"
    tracking: bool = True


def _check(model_params: dict[str, Any]) -> str:
    check_keys("model", model_params, OWN_KEYS)
    base = model_params.get("base")
    if not base or not isinstance(base, str):
        raise ValueError("params model.base: 'tiny', a hub id or a local path is required")
    return base


def run(cfg: BootstrapRun) -> dict[str, Any]:
    """Write cfg.out_dir (model + processor, or a pointer) and a summary; return the summary."""
    base = _check(cfg.model)
    t0 = time.perf_counter()
    dtype = cfg.compute.get("dtype", "float32")
    with stage_run("bootstrap", {"model": cfg.model, "video": cfg.video, "compute": cfg.compute},
                   cfg.tracking) as mlrun:
        if base != TINY:
            summary = _resolve_real(base, dtype, bool(cfg.model.get("copy_base", True)), cfg.out_dir)
        else:
            summary = _build_tiny(cfg, mlrun)
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        write_json(cfg.report_path, summary)
        mlrun.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
    log.info("bootstrap: %s", summary)
    return summary


def _resolve_real(base: str, dtype: str, copy: bool, out_dir: Path) -> dict[str, Any]:
    """A hub id or local path: check it loads, then save a copy (or a pointer when copy=False). A base
    written by the pretrain stage (the shipped default) must match its manifest's file hashes."""
    shipped = (Path(base) / MANIFEST).is_file()
    if shipped:
        check_files(base)
    model, processor = load_model_and_processor(base, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    if copy:
        save_model_and_processor(model, processor, out_dir, extra_files={"bootstrap.json": {"source": base}})
    else:
        save_pointer(base, out_dir)
    summary = {"base": base, "parameters": n_params, "copied": copy}
    if shipped:
        manifest = read_manifest(base)
        summary.update({"manifest_params": manifest["params"]["digest"][:16], "pretrain_commit": manifest["git_commit"]})
    return summary


def _build_tiny(cfg: BootstrapRun, mlrun) -> dict[str, Any]:
    video_cfg = VideoConfig.from_params(cfg.video)
    tiny_cfg = TinyConfig.from_params(cfg.model.get("tiny"))
    records = read_jsonl(cfg.train_file)
    model, processor = build_tiny(tiny_cfg, records, video_cfg)
    summary: dict[str, Any] = {"base": TINY, "parameters": sum(p.numel() for p in model.parameters()),
                               "vocab_size": len(processor.tokenizer)}
    alignment = dict(cfg.model.get("alignment") or {})
    perception = select_records(records, "perception")
    if alignment and alignment.get("max_steps", 0) != 0 and perception:
        run_fp = fingerprint(model=cfg.model, video=cfg.video, compute=cfg.compute,
                             train=file_digest(cfg.train_file))
        log.info("perception alignment on %d records", len(perception))
        alignment = {**alignment, **ComputeConfig.from_params(cfg.compute).trainer_overrides()}
        model, result = train(model, processor, perception, cfg.video_root, alignment, video_cfg,
                              cfg.checkpoint_dir, run_fp, callbacks=[trainer_callback(mlrun)])
        summary.update({f"alignment_{k}": v for k, v in result.items()})
    else:
        log.warning("perception alignment skipped (no model.alignment, max_steps 0 or no perception items)")
    save_model_and_processor(model, processor, cfg.out_dir,
                             extra_files={"bootstrap.json": {"source": TINY, "tiny": tiny_cfg.__dict__}})
    finish_checkpoints(cfg.checkpoint_dir)
    return summary


def main() -> int:
    from videoreasoner.core.params import section

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(BootstrapRun(model=section("model"), video=section("video"), compute=section("compute")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())  # main returns the exit code (vr/cli.py relies on it)
