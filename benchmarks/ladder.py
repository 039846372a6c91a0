"""The ladder on more test items than the evaluate stage scores: greedy answers of each model on
`--items-per-type` test items per problem type (params `video`, `eval.decoding`), AM with its 95 %
bootstrap interval, each rung's gain over the rung before it with a *paired* bootstrap interval (one
resample of the items scores both models), the mean verifier score per task, and optionally the
shuffled-frames control. The evaluate stage keeps 12 items per type to stay inside the 10-minute
pipeline; at that size two models 0.02 AM apart cannot be told apart, at 40 per type they often can.

    python benchmarks/ladder.py [--models models/sft models/rl] [--items-per-type 40] [--shuffled]
    python benchmarks/ladder.py --smoke     # a generated world and two random tiny models (a quick check)

Run it in a workspace where `dvc repro` has written the models and data/validated/test.jsonl.
"""
from __future__ import annotations

import argparse
import collections
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import scratch_workspace, smoke_models, table  # noqa: E402
from videoreasoner.core.params import load_params  # noqa: E402


def score(engine, records: list[dict], decoding, seed: int) -> list[dict]:
    """Per-item results of greedy answers, scored as the evaluate stage scores them, plus the task."""
    from videoreasoner.answers.score import score_predictions
    from videoreasoner.inference.tts_strategies import greedy

    answers = greedy(engine, records, decoding=decoding)
    predictions = [{"id": str(r["id"]), "prediction": a.text} for r, a in zip(records, answers)]
    _, items = score_predictions(records, predictions, seed, n_boot=1)
    return [{**item, "task": (r.get("meta") or {}).get("task", r["problem_type"])} for r, item in zip(records, items)]


def fmt(metric: dict) -> str:
    if metric["value"] is None:
        return "—"
    low, high = metric["ci95"]
    return f"{metric['value']:+.3f} [{low:+.3f}, {high:+.3f}]" if low < 0 else \
        f"{metric['value']:.3f} [{low:.3f}, {high:.3f}]"


def ladder(models: list[str], records: list[dict], params: dict, shuffled: bool, seed: int = 0,
           n_boot: int = 1000) -> tuple[list[tuple], dict[str, dict[str, float]]]:
    """(rows of the AM table, {column: {task: mean score}})."""
    from videoreasoner.inference.controls import control_transform
    from videoreasoner.inference.engines import Decoding, load_engine
    from videoreasoner.answers.metrics import aggregate, paired_difference
    from videoreasoner.video.config import VideoConfig

    video = VideoConfig.from_params(params["video"])
    ev = params["eval"]
    decoding = Decoding.from_params({**ev.get("decoding", {}), "do_sample": False})
    rows, tasks, previous = [], {}, None
    labels = column_labels(models)
    for path in models:
        engine = load_engine(path, video, ".", batch_size=ev.get("batch_size", 16), progress=False,
                             dtype=params["compute"].get("dtype", "float32"), torch_threads=ev.get("torch_threads"))
        conditions = [("video", engine)]
        if shuffled:
            conditions.append(("shuffled", engine.with_frames(
                engine.frames.with_transform(control_transform("shuffled", seed)))))
        for condition, eng in conditions:
            items = score(eng, records, decoding, seed)
            am = aggregate(items, seed, n_boot)["summary"]["AM"]
            gain = paired_difference(previous, items, seed, n_boot) if condition == "video" and previous else None
            rows.append((f"{path} [{condition}]", fmt(am), fmt(gain) if gain else "—"))
            by_task = collections.defaultdict(list)
            for item in items:
                by_task[item["task"]].append(item["score"])
            tasks[f"{labels[path]}:{condition}"] = {t: sum(v) / len(v) for t, v in by_task.items()}
            if condition == "video":
                previous = items
    return rows, tasks


def column_labels(models: list[str]) -> dict[str, str]:
    """A short column name per model: its folder's name, or the whole path where two names collide
    (e.g. /tmp/a/model and /tmp/b/model)."""
    names = [Path(path).name for path in models]
    return {path: name if names.count(name) == 1 else path for path, name in zip(models, names)}


def task_table(tasks: dict[str, dict[str, float]]) -> str:
    columns = list(tasks)
    names = sorted({t for scores in tasks.values() for t in scores})
    lines = ["| task | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += ["| " + t + " | " + " | ".join(f"{tasks[c].get(t, float('nan')):.3f}" for c in columns) + " |"
              for t in names]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["models/base", "models/sft", "models/rl"])
    parser.add_argument("--items-per-type", type=int, default=40)
    parser.add_argument("--test-file", default="data/validated/test.jsonl")
    parser.add_argument("--shuffled", action="store_true", help="also score each model on shuffled frames")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="a generated world and two random tiny models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.data.selection import subset

    params = load_params(ROOT / "params.yaml")
    with scratch_workspace("vr-bench-ladder-", args.smoke) as work:
        if work is not None:
            args.models, args.items_per_type, args.n_boot = smoke_models(work, params, (1, 2), {"train": 1, "val": 0, "test": 1}), 1, 50
            params["eval"] = {**params["eval"], "decoding": {"max_new_tokens": 8}}
        records = subset(read_jsonl(args.test_file), args.items_per_type)
        print(f"{len(records)} test items ({args.items_per_type} per problem type) from {args.test_file}; "
              f"greedy, params video and eval.decoding")
        rows, tasks = ladder(args.models, records, params, args.shuffled, n_boot=args.n_boot)
        print(table(rows, header=("model [frames]", "AM [95% CI]", "gain over the rung above [paired 95% CI]")))
        print()
        print(task_table(tasks))


if __name__ == "__main__":
    main()
