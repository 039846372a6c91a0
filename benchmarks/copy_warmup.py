"""Does a language model that copies make the chains right? An induction warm-up before SFT.

The sft chains lose what the question names (benchmarks/chain_copy.py): with two shapes in the clip,
"When is the red circle visible?" gets a chain that names either shape about as often, on blank frames
too. So the copy from the question fails in the language model, before any video is read. This tests
whether teaching the language model to copy fixes the chains, and what that is worth:

1. The shipped base's language model and head (text only) train on repeated random-word segments, the
   textbook in-context copy (induction): "w1 … wk … w1 … wk", scored on the second copy's words.
2. The sft stage, with its params, trains on that base.
3. Against the sft stage from the shipped base (--control: the pipeline's models/sft), it prints:
   - naming: teacher-forced, does the model give "<think>The <asked object> appears" a higher
     log-probability than the same step naming the clip's other shape (val when-visible and
     appear-time chains of two-shape clips), on the video and on blank frames;
   - val AM, paired, --items-per-type items per problem type, and the score per task.

    python benchmarks/copy_warmup.py [--steps 3000] [--control models/sft] [--items-per-type 40]
    python benchmarks/copy_warmup.py --smoke     # a generated world and a random tiny model (a quick check)

Run it in a workspace where `dvc repro` has written the models and data/validated/ (about 12 minutes on
2 cores: 5 for the warm-up, 5 for sft, 2 for scoring).
"""
from __future__ import annotations

import argparse
import collections
import logging
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.chain_copy import ASKED_OBJECT, scene_of  # noqa: E402
from benchmarks.training import scratch_workspace, smoke_models, table  # noqa: E402
from videoreasoner.core.params import load_params  # noqa: E402

NAMING_TASKS = ("when_visible", "appear_time")  # chains that open "The <asked object> appears at …"


def induction_batch(rng: random.Random, token_ids: list[int], n: int):
    """(input_ids, attention_mask, loss_mask), right-padded: n rows of [prefix, segment, gap, segment]
    with random words; loss_mask marks the positions whose next token is the second copy's 2nd… last
    word (predictable only by copying the first copy)."""
    import torch

    rows, marks = [], []
    for _ in range(n):
        prefix = [rng.choice(token_ids) for _ in range(rng.randint(0, 8))]
        segment = [rng.choice(token_ids) for _ in range(rng.randint(4, 16))]
        gap = [rng.choice(token_ids) for _ in range(rng.randint(0, 12))]
        rows.append(prefix + segment + gap + segment)
        start = len(prefix) + len(segment) + len(gap)  # the second copy's first word
        marks.append([start + i for i in range(len(segment) - 1)])  # predicts word i + 1 of the copy
    width = max(map(len, rows))
    ids = torch.zeros(n, width, dtype=torch.long)
    attention, loss_mask = torch.zeros_like(ids), torch.zeros(n, width)
    for i, (row, mark) in enumerate(zip(rows, marks)):
        ids[i, :len(row)], attention[i, :len(row)] = torch.tensor(row), 1
        loss_mask[i, mark] = 1.0
    return ids, attention, loss_mask


def induction_loss(model, ids, attention, loss_mask):
    """(mean cross-entropy, accuracy) of the next-token predictions that loss_mask marks."""
    import torch

    hidden = model.model.language_model(input_ids=ids, attention_mask=attention).last_hidden_state
    logits, targets, weight = model.lm_head(hidden)[:, :-1], ids[:, 1:], loss_mask[:, :-1]
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    hits = (logits.argmax(-1) == targets).float()
    return (ce * weight).sum() / weight.sum(), float((hits * weight).sum() / weight.sum())


def induction_warmup(model, token_ids: list[int], *, steps: int, learning_rate: float, batch_size: int = 32,
                     seed: int = 0, eval_every: int = 250) -> list[list[float]]:
    """Train the language model and head (AdamW, constant rate); [[step, held-out accuracy], …]."""
    import torch

    params = list(model.model.language_model.parameters()) + list(model.lm_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    rng, held_out = random.Random(seed), induction_batch(random.Random(seed + 99), token_ids, 200)
    curve = []
    model.train()
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                curve.append([step, round(induction_loss(model, *held_out)[1], 3)])
            logging.getLogger(__name__).info("induction step %d: accuracy %.3f", *curve[-1])
        if step == steps:
            break
        loss, _ = induction_loss(model, *induction_batch(rng, token_ids, batch_size))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return curve


def naming_items(records: list[dict], world, limit: int) -> list[tuple[dict, str, str]]:
    """(record, asked object, the other object) for reasoning chains of NAMING_TASKS on two-shape clips."""
    out = []
    for record in records:
        if (record.get("meta") or {}).get("kind") != "reasoning" or record["meta"]["task"] not in NAMING_TASKS:
            continue
        names = [f"{o.colour} {o.shape}" for o in scene_of(record, world).objects]
        asked = ASKED_OBJECT.search(record["question"])
        if len(names) == 2 and asked and asked.group("name") in names:
            out.append((record, asked.group("name"), next(n for n in names if n != asked.group("name"))))
        if len(out) >= limit:
            break
    return out


def naming_preference(engine, items: list[tuple[dict, str, str]]) -> float | None:
    """Share of items whose step naming the asked object outscores the step naming the other one (None
    without items)."""
    records = [record for record, _, _ in items]
    asked = engine.loglik(records, [f"<think>The {a} appears" for _, a, _ in items])
    other = engine.loglik(records, [f"<think>The {o} appears" for _, _, o in items])
    # loglik also scores the end token after the step; the step is a prefix, so leave it out
    wins = [sum(a.token_logprobs[:-1]) > sum(o.token_logprobs[:-1]) for a, o in zip(asked, other)]
    return sum(wins) / len(wins) if wins else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="pretrained/tiny-video-base", help="the base to warm up")
    parser.add_argument("--control", default="models/sft", help="the sft stage's model from --base")
    parser.add_argument("--steps", type=int, default=3000, help="induction steps (the jump came at ~1,700)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--items-per-type", type=int, default=40)
    parser.add_argument("--naming-items", type=int, default=120)
    parser.add_argument("--smoke", action="store_true", help="a generated world and a random tiny model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from benchmarks.ladder import fmt, score, task_table
    from stages.sft import SFTRun, run as run_sft
    from videoreasoner.answers.metrics import aggregate, paired_difference
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.data.selection import subset
    from videoreasoner.data.world.config import WorldConfig
    from videoreasoner.inference.controls import control_transform
    from videoreasoner.inference.engines import Decoding, load_engine
    from videoreasoner.training.language_warmup import single_token_words
    from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
    from videoreasoner.video.config import VideoConfig

    params = load_params(ROOT / "params.yaml")
    sft = {**params["sft"], "loss_gap_items": 0, "save_strategy": "no"}
    with scratch_workspace("vr-bench-induction-", args.smoke) as work, \
            tempfile.TemporaryDirectory(prefix="vr-induction-") as scratch:
        if work is not None:
            models = smoke_models(work, params, (1,), {"train": 2, "val": 6, "test": 1})
            args.base = args.control = models[0]
            args.steps, args.items_per_type, args.naming_items = 4, 2, 8
            sft["max_steps"], params["eval"] = 2, {**params["eval"], "decoding": {"max_new_tokens": 8}}
        scratch = Path(scratch)
        torch.manual_seed(0)
        model, processor = load_model_and_processor(args.base, params["compute"].get("dtype", "float32"))
        token_ids = [processor.tokenizer(" " + w)["input_ids"][0] for w in single_token_words(processor.tokenizer)]
        curve = induction_warmup(model, token_ids, steps=args.steps, learning_rate=args.lr)
        save_model_and_processor(model, processor, scratch / "base")
        run_sft(SFTRun(sft=sft, video=params["video"], compute=params["compute"], base_dir=scratch / "base",
                       out_dir=scratch / "sft", metrics_path=scratch / "sft.json",
                       checkpoint_dir=scratch / "checkpoints", tracking=False))

        video = VideoConfig.from_params(params["video"])
        world = WorldConfig.from_params(params["data"]["synthetic"])
        val = read_jsonl("data/validated/val.jsonl")
        named = naming_items(val, world, args.naming_items)
        records = subset(val, args.items_per_type)
        decoding = Decoding.from_params({**params["eval"].get("decoding", {}), "do_sample": False})
        rows, tasks, previous = [], {}, None
        for label, path in (("sft from the base", args.control), ("sft after the induction warm-up", scratch / "sft")):
            engine = load_engine(path, video, ".", batch_size=params["eval"].get("batch_size", 16), progress=False,
                                 dtype=params["compute"].get("dtype", "float32"),
                                 torch_threads=params["eval"].get("torch_threads"))
            blank = engine.with_frames(engine.frames.with_transform(control_transform("blank")))
            items = score(engine, records, decoding, 0)
            am = aggregate(items, 0, 1000)["summary"]["AM"]
            gain = paired_difference(previous, items, 0, 1000) if previous else None
            naming = [naming_preference(e, named) for e in (engine, blank)]
            rows.append((label, " / ".join("—" if share is None else f"{share:.2f}" for share in naming),
                         fmt(am),
                         f"{gain['value']:+.3f} [{gain['ci95'][0]:+.3f}, {gain['ci95'][1]:+.3f}]" if gain else "—"))
            by_task = collections.defaultdict(list)
            for item in items:
                by_task[item["task"]].append(item["score"])
            tasks[label] = {t: sum(v) / len(v) for t, v in by_task.items()}
            previous = items
        print(f"induction warm-up of {args.base}: {args.steps} steps at {args.lr}; held-out accuracy "
              + ", ".join(f"{acc:.2f} at {step}" for step, acc in curve))
        print(f"{len(named)} two-shape naming chains, {len(records)} val items ({args.items_per_type} per type)")
        print(table(rows, header=("model", "names the asked object: video / blank", "val AM [95% CI]",
                                  "gain [paired 95% CI]")))
        print()
        print(task_table(tasks))


if __name__ == "__main__":
    main()
