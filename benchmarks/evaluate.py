"""Evaluation throughput through the inference engine (videoreasoner/inference/engines.py), in a temporary workspace:
items/s and generated tokens/s for greedy decoding (params `eval`) and for sampled decoding (params
`tts.decoding`, n = the first of `tts.n`). Frames are decoded into the engine's cache before timing
(decode cost: benchmarks/training.py), so the figures are generation alone.

    python benchmarks/evaluate.py [--items 32] [--model models/rl]
    python benchmarks/evaluate.py --smoke

A randomly initialised tiny model rarely emits its end token, so without --model every answer runs to
max_new_tokens: a lower bound on items/s (a trained model stops earlier).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import load_model, make_world, table  # noqa: E402
from videoreasoner.core.params import load_params  # noqa: E402

SMOKE = {"items": 2, "max_new_tokens": 8}


def throughput(engine, records: list[dict], decoding, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    answers = engine.generate(records, n=n, decoding=decoding, desc="bench")
    seconds = time.perf_counter() - t0
    tokens = sum(g.n_tokens for gens in answers for g in gens)
    return {"seconds": seconds, "items_s": len(records) / seconds, "samples_s": len(records) * n / seconds,
            "tokens_s": tokens / seconds, "tokens_per_sample": tokens / (len(records) * n)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=32, help="test items (one engine batch at the default)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="override both decodings' budget")
    parser.add_argument("--model", default=None, help="a checkpoint (e.g. models/rl) instead of the tiny build")
    parser.add_argument("--smoke", action="store_true", help=f"tiny settings for a quick check: {SMOKE}")
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from videoreasoner.inference.engines import Decoding, FrameSource, HFEngine
    from videoreasoner.data.selection import select_records
    from videoreasoner.video.config import VideoConfig

    params = load_params(ROOT / "params.yaml")
    ev, tts = params["eval"], params["tts"]
    budget = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    greedy = Decoding.from_params(ev.get("decoding"), **budget)
    sampled = Decoding.from_params(tts.get("decoding"), do_sample=True, **budget)
    n = int(tts["n"][0])
    work = Path(tempfile.mkdtemp(prefix="vr-bench-eval-"))
    cwd = os.getcwd()
    try:
        os.chdir(work)
        videos = max(1, -(-args.items // 8))  # 8 reasoning items per video
        records = make_world(work, params, {"train": videos, "val": 0, "test": videos})
        model, processor = load_model(params, records, args.model)
        if ev.get("torch_threads"):
            torch.set_num_threads(int(ev["torch_threads"]))
        test = select_records([r for r in records if r["split"] == "test"], "reasoning")[:args.items]
        engine = HFEngine(model, processor, FrameSource(VideoConfig.from_params(params["video"]), work),
                          batch_size=ev.get("batch_size", 16), progress=False)
        for record in test:
            engine.frames.get(record)
        engine.generate(test[:1], decoding=Decoding(max_new_tokens=2))  # warm-up: first-call set-up untimed
        print(f"load average {os.getloadavg()[0]:.1f}; model: {args.model or 'tiny (params model.tiny)'}; "
              f"{len(test)} test items; batch {engine.batch_size} sequences; torch threads "
              f"{torch.get_num_threads()}; greedy max_new_tokens {greedy.max_new_tokens}, sampled n={n} "
              f"max_new_tokens {sampled.max_new_tokens}")
        g = throughput(engine, test, greedy, 1)
        s = throughput(engine, test, sampled, n)
        rows = [
            ("greedy: items/s", f"{g['items_s']:.2f}", "—", "—"),
            ("greedy: generated tokens/s (tokens per item)", f"{g['tokens_s']:.0f} ({g['tokens_per_sample']:.0f})",
             "—", "—"),
            (f"sampled n={n}: items/s (samples/s)", f"{s['items_s']:.2f} ({s['samples_s']:.2f})", "—", "—"),
            (f"sampled n={n}: generated tokens/s (tokens per sample)",
             f"{s['tokens_s']:.0f} ({s['tokens_per_sample']:.0f})", "—", "—"),
        ]
        print(table(rows))
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (figures on a shared machine vary with it)")
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
