"""Can the tiny model's language model learn option look-up, and at which learning rate?

Multiple choice needs the model to find a word among the options and give the letter before it. This
runs the pretrain stage's language warm-up (videoreasoner/training/language_warmup.py: text-only
look-ups in the real multiple-choice prompt, the language model alone) and prints the accuracy on held-out
look-ups over the world's colour words every --eval-every steps (chance 0.25).

  python benchmarks/option_lookup.py --lr 3e-4 --steps 5000              # fresh tiny model (params model.tiny)
  python benchmarks/option_lookup.py --lr 3e-4 --model pretrained/tiny-video-base

Measured (README, "Option look-up needs a lower learning rate"): fresh, 3e-4: 0.35 at 3,000 steps, 0.93 at
5,000; at 1e-3 it stays at chance, as does the shipped base (trained at 1e-3) at either rate.
Run from a workspace whose data/ is generated (a fresh model trains its tokenizer on the train split).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load(model_path: str | None):
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.core.params import section
    from videoreasoner.core.paths import split_file
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig

    if model_path:
        return load_model_and_processor(model_path, "float32")
    tiny = TinyConfig.from_params(section("model").get("tiny") or {})
    return build_tiny(tiny, read_jsonl(split_file("train")), VideoConfig.from_params(section("video")))


def main(argv: list[str] | None = None) -> int:
    import torch

    from videoreasoner.core.params import section
    from videoreasoner.data.world.config import WorldConfig
    from videoreasoner.training.language_warmup import LookupTask, warm_up

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a saved model (default: a fresh tiny model)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-items", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    world = WorldConfig.from_params(section("data")["synthetic"])
    model, processor = load(args.model)
    task = LookupTask(processor.tokenizer, list(world.shapes), list(world.colours), seed=args.seed,
                      held_out_items=args.eval_items)
    t0 = time.perf_counter()
    start = f"model {args.model}" if args.model else "fresh tiny model"
    print(f"{len(task.words)} option words; lr {args.lr}; {start}")
    print("| step | look-up accuracy (colour words, chance 0.25) | seconds |\n|---:|---:|---:|")
    warm_up(model, task, steps=args.steps, learning_rate=args.lr, batch_size=args.batch_size, seed=args.seed,
            eval_every=args.eval_every,
            on_eval=lambda step, acc: print(f"| {step} | {acc:.3f} | {time.perf_counter() - t0:.0f} |", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
