"""Training throughput of the default model settings, in a temporary workspace (a generated world; the
tiny model built from params.yaml `model.tiny`, or --model): SFT and GRPO samples/s and tokens/s, the
input pipeline's share of an SFT step (torch.profiler), and video decoding versus cached frames.

    python benchmarks/training.py [--videos 40] [--sft-steps 16] [--grpo-steps 3] [--model models/base]
    python benchmarks/training.py --smoke          # seconds: a handful of videos and steps

Input pipeline share = time the training loop waits in the DataLoader (`enumerate(DataLoader)` profiler
ranges: fetch, video decode, processor, collate) / time of a whole optimizer step (`ProfilerStep#`
ranges, one per step), over the steps after a warm-up step. Target: at most 5 %. The same share is
also taken without the profiler (wall clock, and CPU time of the training process: on a shared machine
the CPU share moves far less with the load). With DataLoader workers (`--workers`, params
`sft.dataloader_num_workers`) the wait is only what a worker had not prepared in time.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from videoreasoner.core import telemetry  # noqa: E402,F401
from videoreasoner.core.params import load_params  # noqa: E402

INPUT_SHARE_TARGET = 0.05
SMOKE = {"videos": 4, "sft_steps": 3, "profile_steps": 2, "batch": 2, "grpo_steps": 1, "decode_clips": 2}


def table(rows: list[tuple[str, str, str, str]], header=("what", "figure", "target", "result")) -> str:
    """A markdown table; rows are (what, figure, target, PASS/MISS/—)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def share(rows: list[dict], key: str) -> str:
    """'0.53 (335)': the mean of `key` over the rows where it is not None (a share of true, with how many
    rows count), or '—' when none do."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return f"{sum(values) / len(values):.2f} ({len(values)})" if values else "—"


def verdict(value: float, limit: float) -> str:
    return "PASS" if value <= limit else "MISS"


# ---- workspace: a generated world and a model ----------------------------------------------------------
@contextlib.contextmanager
def scratch_workspace(prefix: str, enabled: bool = True):
    """enabled: a fresh temporary folder, the working directory for the block, removed afterwards (a
    --smoke run's generated world); otherwise the working directory stays and None is yielded."""
    if not enabled:
        yield None
        return
    work, cwd = Path(tempfile.mkdtemp(prefix=prefix)), os.getcwd()
    try:
        os.chdir(work)
        yield work
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


def smoke_models(work: Path, params: dict, seeds: tuple[int, ...], videos: dict[str, int]) -> list[str]:
    """A generated world of `videos` clips per split under `work` and one random tiny model per seed,
    saved as work/models/m<seed>; their workspace-relative paths (a --smoke run's models)."""
    from videoreasoner.training.model_io import save_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    records = make_world(work, params, videos)
    video = VideoConfig.from_params(params["video"])
    for seed in seeds:
        tiny = TinyConfig.from_params({**params["model"]["tiny"], "seed": seed})
        save_model_and_processor(*build_tiny(tiny, records, video), work / f"models/m{seed}")
    return [f"models/m{seed}" for seed in seeds]


def make_world(work: Path, params: dict, videos: dict[str, int]) -> list[dict]:
    """Generate `videos` clips per split under work/data/raw/synthetic; records with workspace-relative
    `video`, also written to work/data/validated/<split>.jsonl."""
    from stages import generate
    from videoreasoner.core.atomic import read_jsonl, write_jsonl
    from videoreasoner.data.world.config import WorldConfig

    raw = work / "data/raw/synthetic"
    cfg = replace(WorldConfig.from_params(params["data"]["synthetic"]), videos=videos)
    generate.run(cfg, raw)
    records = [{**r, "video": f"data/raw/synthetic/{r['video']}"} for r in read_jsonl(raw / "annotations.jsonl")]
    for split in ("train", "val", "test"):
        write_jsonl(work / f"data/validated/{split}.jsonl", [r for r in records if r["split"] == split])
    return records


def load_model(params: dict, records: list[dict], model_path: str | None):
    """(model, processor): --model's checkpoint, or the tiny default built as bootstrap builds it
    (without its perception alignment: throughput does not depend on the weights' values)."""
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    if model_path:
        return load_model_and_processor(model_path, params["compute"].get("dtype", "float32"))
    video = VideoConfig.from_params(params["video"])
    return build_tiny(TinyConfig.from_params(params["model"]["tiny"]), records, video)


class TokenCounter:
    """A forward pre-hook counting the batches the model is trained on: rows, real (attention-mask) tokens,
    padded tokens (rows x width) and target tokens (labels != -100)."""

    def __init__(self):
        self.rows = self.real = self.padded = self.targets = 0

    def __call__(self, module, args, kwargs):
        ids, mask, labels = kwargs.get("input_ids"), kwargs.get("attention_mask"), kwargs.get("labels")
        if ids is not None and module.training:
            self.rows += ids.shape[0]
            self.padded += ids.numel()
            self.real += int(mask.sum()) if mask is not None else ids.numel()
            self.targets += int((labels != -100).sum()) if labels is not None else 0


# ---- SFT -----------------------------------------------------------------------------------------------
def sft_params(params: dict, steps: int, batch: int | None, workers: int | None) -> dict:
    from videoreasoner.training.launch import ComputeConfig

    sft = {**params["sft"], "max_steps": steps, "save_strategy": "no", "logging_steps": max(1, steps),
           "disable_tqdm": True, "loss_gap_items": 0}
    if batch:
        sft["per_device_train_batch_size"] = batch
    if workers is not None:
        sft["dataloader_num_workers"] = workers
    return {**sft, **ComputeConfig.from_params(params["compute"]).trainer_overrides()}


@contextlib.contextmanager
def data_waits():
    """Time Trainer.get_batch_samples, where the training loop waits for its next batch(es) (fetch, decode,
    processor, collate; or only the wait for a DataLoader worker). Benchmark-only instrumentation."""
    from transformers import Trainer

    original, waits = Trainer.get_batch_samples, []

    def timed(self, *args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            waits.append((time.perf_counter() - t0, time.process_time() - c0))

    Trainer.get_batch_samples = timed
    try:
        yield waits
    finally:
        Trainer.get_batch_samples = original


def step_ends():
    """A TrainerCallback recording (perf_counter(), process_time()) at the end of every optimizer step."""
    from transformers import TrainerCallback

    class StepEnds(TrainerCallback):
        def __init__(self):
            self.times: list[tuple[float, float]] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append((time.perf_counter(), time.process_time()))

    return StepEnds()


def sft_throughput(model, processor, records, work: Path, params: dict, sft: dict) -> dict[str, float]:
    """One SFT run without the profiler: samples/s and tokens/s over trainer.train()'s wall time, and the
    share of the loop's data waits in the steps after the first, in wall time and in this process's CPU
    time (the CPU share hardly moves with the load of a shared machine; with DataLoader workers it
    counts only the main process)."""
    from videoreasoner.training.sft_trainer import train
    from videoreasoner.video.config import VideoConfig

    counter, ends = TokenCounter(), step_ends()
    handle = model.register_forward_pre_hook(counter, with_kwargs=True)
    try:
        with data_waits() as waits:
            _, summary = train(model, processor, records, work, sft, VideoConfig.from_params(params["video"]),
                               work / "checkpoints/sft-throughput", "bench", callbacks=[ends])
    finally:
        handle.remove()
    sec = summary["seconds"]
    steps = [b[0] - a[0] for a, b in zip(ends.times, ends.times[1:])]
    steps_cpu = [b[1] - a[1] for a, b in zip(ends.times, ends.times[1:])]
    wait = sum(w[0] for w in waits[1:len(ends.times)])
    wait_cpu = sum(w[1] for w in waits[1:len(ends.times)])
    return {"steps": summary["steps"], "seconds": sec, "samples_s": counter.rows / sec,
            "real_tokens_s": counter.real / sec, "padded_tokens_s": counter.padded / sec,
            "target_tokens_s": counter.targets / sec, "pad_share": 1 - counter.real / max(1, counter.padded),
            "step_s": sum(steps) / max(1, len(steps)), "input_s": wait / max(1, len(steps)),
            "share": wait / sum(steps) if steps else float("nan"),
            "cpu_share": wait_cpu / sum(steps_cpu) if steps_cpu else float("nan")}


def sft_input_share(model, processor, records, work: Path, params: dict, sft: dict, steps: int) -> dict[str, float]:
    """One profiled SFT run of `steps` steps: per-step wall (ProfilerStep ranges) and DataLoader wait
    (`enumerate(DataLoader)` ranges), the first (warm-up) step excluded. The profiler records every op
    of the forward and backward, which slows them (reported beside the unprofiled step)."""
    from torch.profiler import ProfilerActivity, profile, schedule
    from transformers import TrainerCallback

    from videoreasoner.training.sft_trainer import train
    from videoreasoner.video.config import VideoConfig

    class StepMarker(TrainerCallback):
        def __init__(self, prof):
            self.prof = prof

        def on_step_end(self, args, state, control, **kwargs):
            self.prof.step()

    sft = {**sft, "max_steps": steps, "logging_steps": steps}
    active = max(1, steps - 1)
    with profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=0, warmup=1, active=active, repeat=1),
                 acc_events=True, record_shapes=False, with_stack=False) as prof:
        train(model, processor, records, work, sft, VideoConfig.from_params(params["video"]),
              work / "checkpoints/sft-profile", "bench", callbacks=[StepMarker(prof)])
    steps, loader = [], []
    for event in prof.events():
        if event.name.startswith("ProfilerStep"):  # "ProfilerStep#3" (or "ProfilerStep*" once collected)
            steps.append(event.cpu_time_total / 1e6)
        elif event.name.startswith("enumerate(DataLoader)"):
            loader.append(event.cpu_time_total / 1e6)
    step_s = sum(steps)
    return {"profiled_steps": len(steps), "step_s": step_s / max(1, len(steps)),
            "input_s": sum(loader) / max(1, len(steps)), "share": sum(loader) / step_s if step_s else float("nan")}


# ---- video decoding versus cached frames ---------------------------------------------------------------
def decode_vs_cache(processor, records, work: Path, params: dict, batch: int, clips: int) -> dict[str, float]:
    """PyAV decode + sampling per clip, a cache hit per clip, and a collated batch with cold / warm frames."""
    from videoreasoner.data.selection import select_records
    from videoreasoner.training.sft_data import VideoSFTCollator, to_dataset, video_path
    from videoreasoner.training.sft_trainer import training_chat_template
    from videoreasoner.video.config import VideoConfig
    from videoreasoner.video.inputs import sample_video

    video_cfg = VideoConfig.from_params(params["video"])
    distinct = list({r["video"]: r for r in select_records(records, "reasoning")}.values())
    paths = [video_path(r, work) for r in distinct[:clips]]
    t0, c0 = time.perf_counter(), time.process_time()
    for path in paths:
        sample_video(path, video_cfg)
    decode, decode_cpu = ((time.perf_counter() - t0) / len(paths), (time.process_time() - c0) / len(paths))

    def collator():
        return VideoSFTCollator(processor, video_cfg, chat_template=training_chat_template(processor),
                                max_length=params["sft"].get("max_length"))

    probe = collator()
    for path in paths:
        probe.video(path)
    t0 = time.perf_counter()
    for _ in range(20):
        for path in paths:
            probe.video(path)
    cached = (time.perf_counter() - t0) / (20 * len(paths))
    rows = list(to_dataset(distinct[:batch], work))
    timed = collator()
    timed(list(to_dataset(distinct[batch:2 * batch] or distinct[:batch], work)))  # its one-time mask check
    cold, warm = [], []  # (wall, CPU) seconds
    for _ in range(3):
        timed._cache.clear()  # noqa: SLF001  (benchmark: the same collator with no decoded clips)
        for out in (cold, warm):
            t0, c0 = time.perf_counter(), time.process_time()
            timed(rows)
            out.append((time.perf_counter() - t0, time.process_time() - c0))

    def med(pairs, i):
        return statistics.median(p[i] for p in pairs)

    return {"decode_ms": decode * 1e3, "decode_cpu_ms": decode_cpu * 1e3, "cached_ms": cached * 1e3,
            "collate_cold_s": med(cold, 0), "collate_warm_s": med(warm, 0),
            "collate_cold_cpu_s": med(cold, 1), "collate_warm_cpu_s": med(warm, 1), "batch": len(rows)}


# ---- GRPO ----------------------------------------------------------------------------------------------
def grpo_throughput(model, processor, work: Path, params: dict, steps: int, smoke: bool) -> dict[str, float]:
    """A few steps of the rl stage (stages.rl.run, tracking off): completions/s and completion tokens/s."""
    from videoreasoner.training.model_io import save_model_and_processor
    from stages.rl import RLRun, run

    rl = {**params["rl"], "max_steps": steps, "save_strategy": "no", "logging_steps": 1, "disable_tqdm": True}
    if smoke:
        rl.update(num_generations=2, per_device_train_batch_size=2, max_completion_length=8, max_records=4)
    save_model_and_processor(model, processor, work / "models/sft")
    summary = run(RLRun(rl=rl, rewards=params["rewards"], video=params["video"], compute=params["compute"],
                        model_dir=work / "models/sft", train_file=work / "data/validated/train.jsonl",
                        video_root=work, out_dir=work / "models/rl", reports_dir=work / "reports/rl",
                        checkpoint_dir=work / "checkpoints/rl", tracking=False))
    with open(work / "reports/rl/curves.csv", encoding="utf-8") as fh:
        lengths = [float(row["completion_length"]) for row in csv.DictReader(fh) if row["completion_length"]]
    per_step = rl["per_device_train_batch_size"] * rl.get("gradient_accumulation_steps", 1)
    sec = summary["seconds"]
    return {"steps": summary["steps"], "seconds": sec, "completions_s": summary["steps"] * per_step / sec,
            "prompts_s": summary["steps"] * per_step / rl["num_generations"] / sec,
            "completion_tokens_s": sum(lengths) * per_step / sec,
            "mean_completion_tokens": statistics.mean(lengths) if lengths else 0.0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=40, help="train videos to generate (8 reasoning items each)")
    parser.add_argument("--sft-steps", type=int, default=16, help="SFT optimizer steps per measured run")
    parser.add_argument("--batch", type=int, default=None, help="SFT batch size (default: params sft)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: params sft)")
    parser.add_argument("--profile-steps", type=int, default=5, help="SFT steps of the profiled run (first: warm-up)")
    parser.add_argument("--grpo-steps", type=int, default=3, help="GRPO steps (0: skip)")
    parser.add_argument("--decode-clips", type=int, default=16, help="clips timed for decode vs cache")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--model", default=None, help="a checkpoint (e.g. models/base) instead of the tiny build")
    parser.add_argument("--smoke", action="store_true", help=f"tiny settings for a quick check: {SMOKE}")
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from videoreasoner.data.selection import select_records

    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(ROOT / "params.yaml")
    work = Path(tempfile.mkdtemp(prefix="vr-bench-train-"))
    cwd = os.getcwd()
    try:
        os.chdir(work)
        records = make_world(work, params, {"train": args.videos, "val": 0, "test": 0})
        model, processor = load_model(params, records, args.model)
        reasoning = select_records(records, "reasoning")
        sft = sft_params(params, args.sft_steps, args.batch, args.workers)
        batch = sft["per_device_train_batch_size"]
        n_params = sum(p.numel() for p in model.parameters())
        print(f"load average {os.getloadavg()[0]:.1f}; model: {args.model or 'tiny (params model.tiny)'}, "
              f"{n_params / 1e6:.2f} M parameters; {args.videos} train videos, {len(reasoning)} reasoning records; "
              f"SFT batch {batch}, {args.sft_steps} steps, dataloader workers {sft.get('dataloader_num_workers', 0)}; "
              f"torch threads {torch.get_num_threads()}; cores {os.cpu_count()}")
        video = decode_vs_cache(processor, records, work, params, batch, args.decode_clips)
        thr = sft_throughput(model, processor, reasoning, work, params, sft)
        share = sft_input_share(model, processor, reasoning, work, params, sft, args.profile_steps)
        rows = [
            ("SFT samples/s", f"{thr['samples_s']:.2f}", "—", "—"),
            ("SFT tokens/s (real / padded; targets)",
             f"{thr['real_tokens_s']:.0f} / {thr['padded_tokens_s']:.0f}; {thr['target_tokens_s']:.0f}", "—", "—"),
            ("SFT step, mean (unprofiled / profiled)", f"{thr['step_s']:.3f} s / {share['step_s']:.3f} s",
             "—", "—"),
            ("input pipeline wait per step (unprofiled / profiled)",
             f"{thr['input_s']:.3f} s / {share['input_s']:.3f} s", "—", "—"),
            ("input pipeline share of a step, torch.profiler", f"{100 * share['share']:.1f} %",
             f"≤ {100 * INPUT_SHARE_TARGET:.0f} %", verdict(share["share"], INPUT_SHARE_TARGET)),
            ("input pipeline share of a step, wall clock (no profiler)", f"{100 * thr['share']:.1f} %",
             f"≤ {100 * INPUT_SHARE_TARGET:.0f} %", verdict(thr["share"], INPUT_SHARE_TARGET)),
            ("input pipeline share of a step, CPU time of the training process", f"{100 * thr['cpu_share']:.1f} %",
             "—", "—"),
            ("video decode + sample, PyAV, per clip (wall / CPU)",
             f"{video['decode_ms']:.1f} ms / {video['decode_cpu_ms']:.1f} ms", "—", "—"),
            ("cached frames, per clip", f"{video['cached_ms']:.4f} ms", "—", "—"),
            (f"collate batch {video['batch']}, cold frames (wall / CPU)",
             f"{video['collate_cold_s']:.3f} s / {video['collate_cold_cpu_s']:.3f} s", "—", "—"),
            (f"collate batch {video['batch']}, cached frames (wall / CPU)",
             f"{video['collate_warm_s']:.3f} s / {video['collate_warm_cpu_s']:.3f} s", "—", "—"),
        ]
        if args.grpo_steps:
            grpo = grpo_throughput(model, processor, work, params, args.grpo_steps, args.smoke)
            rows += [
                ("GRPO completions/s (prompts/s)", f"{grpo['completions_s']:.2f} ({grpo['prompts_s']:.2f})",
                 "—", "—"),
                ("GRPO completion tokens/s (mean length)",
                 f"{grpo['completion_tokens_s']:.0f} ({grpo['mean_completion_tokens']:.0f})", "—", "—"),
                ("GRPO steps/s", f"{grpo['steps'] / grpo['seconds']:.3f}", "—", "—"),
            ]
        print(table(rows))
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (figures on a shared machine vary with it)")
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
