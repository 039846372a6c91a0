"""What the model carries from the question into its answer, and which colour goes with which shape.

Four checks, each read against the world's exact scene of the clip (videoreasoner/data/world):
- binding (direct answers, val perception items): the colour of the asked shape and the shape of the
  asked colour, by the number of coloured shapes in the clip. With one shape on screen any colour seen is
  the right one; with two, a model that sees both colours but cannot tell which belongs to the asked
  shape answers the other one about half the time.
- naming (chains, test items): the first step names the object the question asks about ("When is the
  red circle visible?" -> "The red circle appears at…"), by the number of shapes in the clip. A chain that
  names one of two shapes at random scores 0.5 on two.
- time copy (chains): a count-at-time or where-at-t chain restates the question's time ("At 5.0 s…");
  a guess among the clip's whole seconds scores about 1/8.
- step to answer (chains): a when-visible answer gives the span its chain's last step states.

Each of the last three is a copy from earlier in the context, the in-context skill that the option
look-up of benchmarks/mc_chain.py also needs. Binding is scored on models that answer directly (the base:
sft and rl answer a direct question with a chain), the copies on models that write chains.

    python benchmarks/chain_copy.py [--direct models/base] [--chains models/sft models/rl] [--items 100]
    python benchmarks/chain_copy.py --smoke     # a generated world and a random tiny model (a quick check)

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
from videoreasoner.data.world.config import PALETTE, SHAPES  # noqa: E402

BINDING_TASKS = ("colour_word", "shape_word")  # direct answers: "What colour is the diamond? …"
NAMING_TASKS = ("when_visible", "appear_time", "visible_seconds", "where_at_time", "track", "describe_motion")
TIME_TASKS = ("count_at_time", "where_at_time")
# The chains' wording (videoreasoner/data/world/questions.py).
OBJECT = rf"(?:{'|'.join(PALETTE)}) (?:{'|'.join(SHAPES)})"  # "red circle"
ASKED_OBJECT = re.compile(rf"\bthe (?P<name>{OBJECT})\b")
FIRST_STEP = re.compile(r"^\s*(?:<think>)?\s*The (?P<name>[a-z]+ [a-z]+) appears")  # any two words: a wrong name counts
QUESTION_TIME = re.compile(r"\bat (?P<t>\d+(?:\.\d+)?) s\b")
CHAIN_TIME = re.compile(r"\bAt (?P<t>\d+(?:\.\d+)?) s\b")
STEP_SPAN = re.compile(r"visible from (?P<a>\d+(?:\.\d+)?) to (?P<b>\d+(?:\.\d+)?) s")
ANSWER_SPAN = re.compile(r"<answer>\s*(?P<a>\d+(?:\.\d+)?) to (?P<b>\d+(?:\.\d+)?)\s*</answer>")
DIRECT_ANSWER = re.compile(r"<answer>\s*(?P<word>[^<]*?)\s*</answer>")


def copies(record: dict, text: str) -> dict[str, bool | None]:
    """For one generated chain: does it name the asked object, restate the asked time, and answer the
    span of its last step (None where the record's task has no such copy or the chain lacks the step)."""
    task = (record.get("meta") or {}).get("task")
    out: dict[str, bool | None] = {"names_asked_object": None, "copies_time": None, "answer_follows_step": None}
    if task in NAMING_TASKS and (asked := ASKED_OBJECT.search(record["question"])):
        step = FIRST_STEP.search(text)
        out["names_asked_object"] = bool(step and step.group("name") == asked.group("name"))
    if task in TIME_TASKS and (asked_t := QUESTION_TIME.search(record["question"])):
        said = CHAIN_TIME.search(text)
        out["copies_time"] = bool(said and float(said.group("t")) == float(asked_t.group("t")))
    if task == "when_visible" and (step_span := STEP_SPAN.search(text)):
        answer = ANSWER_SPAN.search(text)
        out["answer_follows_step"] = bool(answer and [float(answer.group(k)) for k in "ab"]
                                          == [float(step_span.group(k)) for k in "ab"])
    return out


def binding(record: dict, text: str, scene) -> dict[str, bool | None]:
    """For one direct colour or shape answer: right, and when wrong, whether it names another shape's
    colour (or another colour's shape) in the clip: a binding error rather than a perception one."""
    said = DIRECT_ANSWER.search(text)
    word = said.group("word").strip().lower() if said else ""
    attribute = "colour" if record["meta"]["task"] == "colour_word" else "shape"
    right = word == str(record["answer"]).strip().lower()
    others = {getattr(o, attribute) for o in scene.objects} - {str(record["answer"]).lower()}
    return {"correct": right, "names_other_object": None if right else word in others}


def scene_of(record: dict, world):
    from videoreasoner.data.world.streams import parse_video_id, scene_for

    return scene_for(world, *parse_video_id(record["meta"]["video_id"]))[0]


def by_objects(rows: list[dict], key: str) -> str:
    """'one shape / two or more' shares of `key`."""
    return " / ".join(share([r for r in rows if (r["objects"] == 1) == single], key) for single in (True, False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direct", nargs="*", default=["models/base"], help="models scored on binding")
    parser.add_argument("--chains", nargs="*", default=["models/sft", "models/rl"], help="models scored on copies")
    parser.add_argument("--items", type=int, default=100, help="items per task")
    parser.add_argument("--smoke", action="store_true", help="a generated world and a random tiny model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.data.world.config import WorldConfig
    from videoreasoner.inference.engines import Decoding, load_engine
    from videoreasoner.inference.tts_strategies import greedy
    from videoreasoner.video.config import VideoConfig

    params = load_params(ROOT / "params.yaml")
    with scratch_workspace("vr-bench-copy-", args.smoke) as work:
        if work is not None:
            args.direct = args.chains = smoke_models(work, params, (1,), {"train": 1, "val": 2, "test": 2})
            args.items, params["eval"] = 4, {**params["eval"], "decoding": {"max_new_tokens": 8}}
        world = WorldConfig.from_params(params["data"]["synthetic"])
        video = VideoConfig.from_params(params["video"])
        decoding = Decoding.from_params({**params["eval"].get("decoding", {}), "do_sample": False})

        def pick(path: str, kind: str, tasks: tuple[str, ...]) -> list[dict]:
            records = [r for r in read_jsonl(path) if (r.get("meta") or {}).get("kind") == kind]
            return [r for t in tasks for r in [r for r in records if r["meta"]["task"] == t][:args.items]]

        direct = pick("data/validated/val.jsonl", "perception", BINDING_TASKS)
        chains = pick("data/validated/test.jsonl", "reasoning", tuple(dict.fromkeys(NAMING_TASKS + TIME_TASKS)))
        objects = {r["id"]: len(scene_of(r, world).objects) for r in direct + chains}
        print(f"{len(direct)} val direct-answer items ({', '.join(BINDING_TASKS)}), {len(chains)} test chains; "
              "figures are shares (items counted), one shape / two or more in the clip where split")
        bind_rows, copy_rows = [], []

        def engine_for(path: str):
            return load_engine(path, video, ".", batch_size=params["eval"].get("batch_size", 16), progress=False,
                               dtype=params["compute"].get("dtype", "float32"))

        for path in args.direct:
            answers = greedy(engine_for(path), direct, decoding=decoding)
            scored = [{**binding(r, a.text, scene_of(r, world)), "objects": objects[r["id"]], "task": r["meta"]["task"]}
                      for r, a in zip(direct, answers)]
            for task in BINDING_TASKS:
                rows = [s for s in scored if s["task"] == task]
                bind_rows.append((path, task, by_objects(rows, "correct"), share(rows, "names_other_object")))
        for path in args.chains:
            answers = greedy(engine_for(path), chains, decoding=decoding)
            scored = [{**copies(r, a.text), "objects": objects[r["id"]]} for r, a in zip(chains, answers)]
            copy_rows.append((path, by_objects(scored, "names_asked_object"), share(scored, "copies_time"),
                              share(scored, "answer_follows_step")))
        print("\nbinding, direct answers:")
        print(table(bind_rows, header=("model", "task", "right (one shape / two or more)",
                                       "wrong answers naming another shape's attribute")))
        print("\ncopies in the chain of thought:")
        print(table(copy_rows, header=("model", "names the asked object (one shape / two or more)",
                                       "restates the asked time", "when-visible answer = its step's span")))


if __name__ == "__main__":
    main()
