"""Plain perception items with short direct answers (no chain of thought), for teaching a randomly
initialised model to see before it learns to reason (the pretrain stage): the colour word, the shape
word, the count, a one-line caption, option look-up (mapping a named value to its option letter, a text
skill the tiny model does not pick up from chain-of-thought data alone; see docs/architecture.md), which
object appears first or last, when an object is visible (a half-open span [enter, exit) in seconds) and
where it is at a time (a normalised box). The last two are the grounding questions of
videoreasoner/data/world/questions.py without their chain of thought."""
from __future__ import annotations

import numpy as np

from videoreasoner.data.world.config import WorldConfig
from videoreasoner.data.world.questions import Item, _options, inventory, spatial, temporal
from videoreasoner.data.world.scene import Scene, SceneObject


def colour_word(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return "free_form", {"task": "colour_word", "answer": obj.colour,
                         "question": f"What colour is the {obj.shape}? Answer with one word."}


def shape_word(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return "free_form", {"task": "shape_word", "answer": obj.shape,
                         "question": f"What shape is the {obj.colour} object? Answer with one word."}


def count(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return "numerical", {"task": "count_direct", "answer": str(len(scene.objects)),
                         "question": "How many coloured shapes appear in the video? Answer with a number."}


def one_line_caption(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return "free_form", {"task": "caption_line", "answer": inventory(scene),
                         "question": "Name the coloured shapes in the video in one line."}


def option_lookup(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    options, letter = _options(rng, obj.colour, list(cfg.colours))
    return "multiple_choice", {"task": "option_lookup", "options": options, "answer": letter,
                               "question": f"The {obj.shape} is {obj.colour}. Which option says {obj.colour}?"}


def first_or_last(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item | None:
    ordered = scene.by_appearance()
    if len(ordered) < 2:
        return None  # one object: the caption already names it
    which = "first" if rng.random() < 0.5 else "last"
    target = ordered[0] if which == "first" else ordered[-1]
    return "free_form", {"task": "order_direct", "answer": target.name,
                         "question": f"Which coloured shape appears {which}? Answer with its colour and shape."}


def _direct(item: Item, task: str) -> Item:
    problem_type, fields = item
    fields = {k: v for k, v in fields.items() if k != "reasoning"}
    return problem_type, {**fields, "task": task}


def when_visible(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return _direct(temporal(scene, obj, rng, cfg), "when_visible_direct")


def where_at_time(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return _direct(spatial(scene, obj, rng, cfg), "where_at_time_direct")


PERCEPTION_BUILDERS = (colour_word, shape_word, count, one_line_caption, option_lookup, first_or_last,
                       when_visible, where_at_time)


def perception_items(scene: Scene, rng: np.random.Generator, cfg: WorldConfig) -> list[Item]:
    items: list[Item] = []
    if not scene.objects:
        return items
    order = rng.permutation(len(PERCEPTION_BUILDERS))  # distinct tasks per video, then cycle
    for j in range(cfg.perception_per_video):
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        item = PERCEPTION_BUILDERS[order[j % len(order)]](scene, obj, rng, cfg)
        if item is not None:
            items.append(item)
    return items
