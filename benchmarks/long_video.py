"""Long-video frame selection at a fixed token budget: cost and a model-independent grounding bound.

For clips of 10 s, 30 s, 1 min, 3 min and 10 min from the synthetic world's long mode (needles: coloured
shapes visible 2–6 s; decoys: grey shapes as brief; drifting dots) and for every sampler of
videoreasoner/video/samplers.py at the same budget (params `video` with min_frames = max_frames = --frames), it
prints per length and sampler: video tokens per clip (from the processor's video_grid_thw), wall time
of selection + decode + processor, peak traced memory (tracemalloc, first clip), the needle hit rate
(share of "when is X visible" items with at least one selected frame inside the true span) and the
oracle tIoU: the temporal IoU an ideal observer of the selected frames reaches (it knows which
selected frames show the needle; each boundary is estimated as the middle of the frame-grid interval
it must lie in, so a boundary bracketed by two adjacent frames is exact; no hit scores 0). The bound
depends on the frames chosen only, not on any model.

Then, on a long-clip test split (--split-videos clips, durations from params data.synthetic.long), the
paired difference of oracle tIoU (keyframes − uniform, keyclips − uniform) per item with its 95 %
bootstrap interval (videoreasoner/answers/metrics.py's percentile bootstrap). Everything runs in a temporary folder.

    python benchmarks/long_video.py [--clips 8] [--split-videos 40] [--frames 16] [--lengths 10,30,60,180,600]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from videoreasoner.core import telemetry  # noqa: E402,F401
from videoreasoner.core.params import load_params  # noqa: E402


def oracle_iou(times: list[float], span: list[float], duration: float, dt: float) -> tuple[bool, float]:
    """(hit, IoU of the ideal observer's span) for the selected frame times (seconds, increasing) and
    the true span [enter, exit) on a frame grid of dt seconds."""
    from videoreasoner.answers.iou import temporal_iou
    from videoreasoner.answers.spans import in_span

    hits = [i for i, t in enumerate(times) if in_span(t, span)]
    if not hits:
        return False, 0.0
    first, last = hits[0], hits[-1]
    before = times[first - 1] + dt if first > 0 else 0.0  # the earliest the shape can have appeared
    after = times[last + 1] if last + 1 < len(times) else duration  # the latest it can have vanished
    guess = [(before + times[first]) / 2, (times[last] + dt + after) / 2]
    return True, temporal_iou(guess, span)


def generate(out: Path, world, videos: int, duration: tuple[float, float] | None, seed: int) -> list[dict]:
    from videoreasoner.core.atomic import read_jsonl
    from stages.generate import run

    long = replace(world.long, videos={"test": videos}, **({"duration_s": duration} if duration else {}))
    run(replace(world, seed=seed, videos={}, long=long, workers=min(2, os.cpu_count() or 1)), out)
    return read_jsonl(out / "annotations.jsonl")


def measure(records: list[dict], root: Path, cfg, processor) -> dict:
    """Per clip: tokens, seconds; per needle item: hit, oracle IoU; peak memory on the first clip."""
    from videoreasoner.video import samplers
    from videoreasoner.video.inputs import build_messages, processor_inputs, sample_video, video_tokens

    by_video: dict[str, list[dict]] = {}
    for r in records:
        by_video.setdefault(r["video"], []).append(r)
    out = {"tokens": [], "seconds": [], "peak_mb": None, "hits": [], "iou": [], "ids": []}
    for n, (video, recs) in enumerate(sorted(by_video.items())):
        samplers._change_signal.cache_clear()  # every clip pays for its own change scoring
        if n == 0:
            tracemalloc.start()
        t0 = time.perf_counter()
        clip = sample_video(root / video, cfg)
        batch = processor_inputs(processor, [build_messages(recs[0], with_target=False)], [clip], cfg,
                                 add_generation_prompt=True)
        seconds = time.perf_counter() - t0
        if n == 0:
            out["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        else:
            out["seconds"].append(seconds)
        out["tokens"].append(video_tokens(batch)[0])
        for r in recs:
            if r["problem_type"] == "temporal_grounding":
                hit, iou = oracle_iou(list(clip.timestamps), r["answer"], r["duration"], 1 / clip.file_fps)
                out["hits"].append(hit), out["iou"].append(iou), out["ids"].append(r["id"])
    if not out["seconds"]:  # a single clip: its (traced, slower) time is all there is
        out["seconds"].append(seconds)
    return out


def paired(a: list[float], b: list[float], name: str, seed: int, n_boot: int) -> dict:
    import numpy as np

    from videoreasoner.answers.metrics import _bootstrap, _mean  # the percentile bootstrap every metric uses

    return _bootstrap([np.asarray(a, float) - np.asarray(b, float)], _mean, name, seed, n_boot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="clips per length in the cost table")
    parser.add_argument("--lengths", default="10,30,60,180,600", help="clip lengths, seconds")
    parser.add_argument("--split-videos", type=int, default=40, help="clips in the long-clip test split (0: skip)")
    parser.add_argument("--frames", type=int, default=16, help="frame budget of the uniform sampler")
    parser.add_argument("--fps", type=float, default=1.0, help="rate of the fps sampler (frames per second)")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import numpy as np

    from videoreasoner.video.samplers import SAMPLERS
    from videoreasoner.training.tiny_model import build_processor, corpus_texts, train_tokenizer
    from videoreasoner.video.config import VideoConfig
    from videoreasoner.data.world.config import WorldConfig

    params = load_params(ROOT / "params.yaml")
    world = WorldConfig.from_params(params["data"]["synthetic"])
    video = VideoConfig.from_params({**params["video"], "min_frames": args.frames, "max_frames": args.frames,
                                     "fps": args.fps})
    work = Path(tempfile.mkdtemp(prefix="vr-long-"))
    try:
        lengths = [float(x) for x in args.lengths.split(",") if x]
        sets = {L: (work / f"len{int(L)}", generate(work / f"len{int(L)}", world, args.clips, (L, L),
                                                     args.seed + int(L))) for L in lengths}
        texts = corpus_texts(next(iter(sets.values()))[1])
        processor = build_processor(train_tokenizer(texts, 400), video)
        print(f"budget: {args.frames} frames at {video.max_pixels} px (uniform), fps sampler at {video.fps}/s; change_share "
              f"{video.change_share}, clip_frames {video.clip_frames}, keyclip_factor {video.keyclip_factor}; "
              f"{args.clips} clips per length at {world.long.fps} fps, cores: {os.cpu_count()}")
        print(f"{'length_s':>8} {'sampler':<10}{'tokens':>7}{'ms/clip':>9}{'peak_MB':>9}{'items':>6}"
              f"{'hit_rate':>9}{'oracle_tIoU':>12}")
        for L, (root, records) in sets.items():
            for name in SAMPLERS:
                m = measure(records, root, replace(video, sampler=name), processor)
                print(f"{L:>8.0f} {name:<10}{np.mean(m['tokens']):>7.0f}{1000 * np.mean(m['seconds']):>9.1f}"
                      f"{m['peak_mb']:>9.1f}{len(m['hits']):>6}{np.mean(m['hits']):>9.3f}{np.mean(m['iou']):>12.3f}")
        if args.split_videos:
            root = work / "split"
            records = generate(root, world, args.split_videos, None, args.seed)
            results = {name: measure(records, root, replace(video, sampler=name), processor) for name in SAMPLERS}
            lo, hi = world.long.duration_s
            print(f"\nlong-clip test split: {args.split_videos} clips of {lo:.0f}-{hi:.0f} s, "
                  f"{len(results['uniform']['iou'])} 'when is X visible' items; paired difference of oracle tIoU "
                  f"and hit rate, 95 % bootstrap interval ({args.n_boot} resamples)")
            base = results["uniform"]
            for name in [s for s in SAMPLERS if s != "uniform"]:
                assert results[name]["ids"] == base["ids"]
                d_iou = paired(results[name]["iou"], base["iou"], f"{name}-iou", args.seed, args.n_boot)
                d_hit = paired(results[name]["hits"], base["hits"], f"{name}-hit", args.seed, args.n_boot)
                print(f"  {name:<10} - uniform: tokens {np.mean(results[name]['tokens']):.1f} vs "
                      f"{np.mean(base['tokens']):.1f}; tIoU {np.mean(results[name]['iou']):.3f} vs {np.mean(base['iou']):.3f}, "
                      f"diff {d_iou['value']:+.3f} [{d_iou['ci95'][0]:+.3f}, {d_iou['ci95'][1]:+.3f}]; "
                      f"hit rate diff {d_hit['value']:+.3f} [{d_hit['ci95'][0]:+.3f}, {d_hit['ci95'][1]:+.3f}]")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
