"""Where multiple choice fails inside the chain of thought.

The world's multiple-choice chains end in a look-up step, "…The triangle is white. Among the options,
white is option C." (videoreasoner/data/world/questions.py), then `<answer>C</answer>`. A wrong letter can
come from three places, and this script tells them apart on the test split's multiple-choice items:
- perception: the option the chain names is not the right one;
- look-up: the letter the chain gives is not the letter of the option it names;
- copy: the answer is not the letter the chain gave.
It also scores both letters under teacher forcing (the right chain fed in, the letter's logit among the
four letters) on train and test items: a model that is at chance there on *train* items has not fitted
the step at all, which is an optimisation limit rather than a generalisation one.

    python benchmarks/mc_chain.py [--models models/sft models/rl] [--items 120] [--forced-items 160]
    python benchmarks/mc_chain.py --smoke     # a generated world and a random tiny model (a quick check)

Run it in a workspace where `dvc repro` has written the models and data/validated/.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import scratch_workspace, share, smoke_models, table  # noqa: E402
from videoreasoner.core.params import load_params  # noqa: E402
from videoreasoner.core.schema import OPTION_LETTERS  # noqa: E402

LETTERS = OPTION_LETTERS[:4]  # the world's four options: the letters scored under teacher forcing
# The look-up step as videoreasoner/data/world/questions.py writes it.
LOOKUP_STEP = re.compile(r"Among the options, (?P<option>.+?) is option (?P<letter>[A-Z])\.")
ANSWER_LETTER = re.compile(r"<answer>\s*(?P<letter>[A-Z])\s*</answer>")


def multiple_choice(records: list[dict], n: int) -> list[dict]:
    """The first n multiple-choice reasoning records (those with options and a look-up step)."""
    from videoreasoner.data.selection import select_records

    return [r for r in select_records(records, "reasoning")
            if r["problem_type"] == "multiple_choice" and LOOKUP_STEP.search(r.get("reasoning") or "")][:n]


def breakdown(record: dict, text: str) -> dict[str, bool | None]:
    """For one generated answer: correct, and the three places it can go wrong (None: not reached)."""
    step, answer = LOOKUP_STEP.search(text), ANSWER_LETTER.search(text)
    right = record["options"][OPTION_LETTERS.index(record["answer"])]
    named = step.group("option") if step else None
    return {
        "correct": bool(answer and answer.group("letter") == record["answer"]),
        "has_step": step is not None,
        "names_right_option": None if step is None else named == right,
        "looks_up_its_option": (None if step is None or named not in record["options"]
                                else OPTION_LETTERS[record["options"].index(named)] == step.group("letter")),
        "answer_copies_step": None if step is None else bool(answer and answer.group("letter") == step.group("letter")),
    }


def generated(engine, records: list[dict], decoding) -> list[dict]:
    from videoreasoner.inference.tts_strategies import greedy

    answers = greedy(engine, records, decoding=decoding)
    return [{**breakdown(r, a.text), "task": (r.get("meta") or {}).get("task", "?")} for r, a in zip(records, answers)]


def teacher_forced(model, processor, records: list[dict], video_cfg, batch_size: int = 16) -> dict[str, float]:
    """Accuracy of the step's letter and the answer's letter given the right chain before each, the
    argmax taken over the four letter tokens (with and without a leading space, as they are written)."""
    import torch

    from videoreasoner.training.sft_data import VideoSFTCollator, to_dataset
    from videoreasoner.training.sft_trainer import training_chat_template

    tok = processor.tokenizer
    spaced = torch.tensor([tok(" " + letter)["input_ids"][0] for letter in LETTERS])
    bare = torch.tensor([tok(letter)["input_ids"][0] for letter in LETTERS])
    collator = VideoSFTCollator(processor, video_cfg, chat_template=training_chat_template(processor))
    spaced_ids, bare_ids = set(spaced.tolist()), set(bare.tolist())
    hits, n = {"step": 0, "answer": 0}, 0
    model.eval()
    for start in range(0, len(records), batch_size):
        batch = collator(to_dataset(records[start:start + batch_size], ".").to_list())
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = model(**batch).logits
        for row in range(labels.shape[0]):
            targets = (labels[row] != -100).nonzero().flatten().tolist()
            step = [p for p in targets if int(labels[row, p]) in spaced_ids]
            answer = [p for p in targets if int(labels[row, p]) in bare_ids]
            if not step or not answer:
                continue
            n += 1
            for name, pos, ids in (("step", step[-1], spaced), ("answer", answer[-1], bare)):
                hits[name] += int(ids[logits[row, pos - 1, ids].argmax()] == labels[row, pos])
    return {k: v / n for k, v in hits.items()} if n else {"step": float("nan"), "answer": float("nan")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["models/sft", "models/rl"])
    parser.add_argument("--items", type=int, default=120, help="test multiple-choice items generated")
    parser.add_argument("--forced-items", type=int, default=160, help="train and test items teacher-forced")
    parser.add_argument("--smoke", action="store_true", help="a generated world and a random tiny model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.inference.engines import Decoding, load_engine
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.video.config import VideoConfig

    params = load_params(ROOT / "params.yaml")
    with scratch_workspace("vr-bench-mc-", args.smoke) as work:
        if work is not None:
            args.models, args.items, args.forced_items = smoke_models(work, params, (1,), {"train": 2, "val": 0, "test": 2}), 4, 4
            params["eval"] = {**params["eval"], "decoding": {"max_new_tokens": 8}}
        video = VideoConfig.from_params(params["video"])
        decoding = Decoding.from_params({**params["eval"].get("decoding", {}), "do_sample": False})
        test = multiple_choice(read_jsonl("data/validated/test.jsonl"), max(args.items, args.forced_items))
        train = multiple_choice(read_jsonl("data/validated/train.jsonl"), args.forced_items)
        print(f"{min(len(test), args.items)} test multiple-choice items generated (greedy); {len(train)} train and "
              f"{min(len(test), args.forced_items)} test items teacher-forced; chance 0.25")
        rows, by_task = [], {}
        for path in args.models:
            engine = load_engine(path, video, ".", batch_size=params["eval"].get("batch_size", 16), progress=False,
                                 dtype=params["compute"].get("dtype", "float32"))
            items = generated(engine, test[:args.items], decoding)
            by_task[path] = {t: share([i for i in items if i["task"] == t], "names_right_option")
                             for t in sorted({i["task"] for i in items})}
            model, processor = load_model_and_processor(path, params["compute"].get("dtype", "float32"))
            forced_train = teacher_forced(model, processor, train, video)
            forced_test = teacher_forced(model, processor, test[:args.forced_items], video)
            rows.append((path, share(items, "correct"), share(items, "has_step"), share(items, "names_right_option"),
                         share(items, "looks_up_its_option"), share(items, "answer_copies_step"),
                         f"{forced_train['step']:.2f} / {forced_test['step']:.2f}",
                         f"{forced_train['answer']:.2f} / {forced_test['answer']:.2f}"))
        print(table(rows, header=("model", "correct", "chain has the step", "names the right option",
                                  "looks up its option", "answer copies the step",
                                  "forced step letter (train / test)", "forced answer letter (train / test)")))
        tasks = sorted({t for shares in by_task.values() for t in shares})
        print("\nnames the right option, per task (the perception before the look-up):")
        print(table([(t, *(by_task[path].get(t, "—") for path in args.models)) for t in tasks],
                    header=("task", *args.models)))


if __name__ == "__main__":
    main()
