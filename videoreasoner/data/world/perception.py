"""Plain perception items with short direct answers (no chain of thought), for teaching a randomly
initialised model to see before it learns to reason: the colour word, the shape word, the count, a
one-line caption, and option look-up (mapping a named value to its option letter, a text skill the
tiny model does not pick up from chain-of-thought data alone; see docs/architecture.md)."""
from __future__ import annotations

import numpy as np

from videoreasoner.data.world.config import WorldConfig
from videoreasoner.data.world.questions import Item, _options, inventory
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


PERCEPTION_BUILDERS = (colour_word, shape_word, count, one_line_caption, option_lookup)


def perception_items(scene: Scene, rng: np.random.Generator, cfg: WorldConfig) -> list[Item]:
    items: list[Item] = []
    if not scene.objects:
        return items
    order = rng.permutation(len(PERCEPTION_BUILDERS))  # distinct tasks per video, then cycle
    for j in range(cfg.perception_per_video):
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        items.append(PERCEPTION_BUILDERS[order[j % len(order)]](scene, obj, rng, cfg))
    return items
