"""Questions about a scene, one builder per task, each returning (problem_type, fields) with an exact
chain of thought in `reasoning` derived from the same geometry that rendered the pixels.

Times in text are seconds written by `fmt_s`; spans are half-open, [enter, exit): the frame at `exit`
no longer shows the object (videoreasoner/data/world/scene.py, videoreasoner/answers/spans.py), so a
tube's box times run from enter in steps of box_step_s while t < exit. Boxes are normalised
[x1, y1, x2, y2].
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from videoreasoner.core.schema import option_letter
from videoreasoner.data.world.config import WorldConfig
from videoreasoner.data.world.scene import DIRECTIONS, Scene, SceneObject

Item = tuple[str, dict]  # (problem_type, record fields: question, answer, options?, reasoning?, task)


def fmt_s(t: float) -> str:
    """Seconds as text: at least one decimal, no trailing zeros beyond it (1.0, 1.25, 0.5)."""
    text = f"{t:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def fmt_box(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _options(rng: np.random.Generator, correct: str, pool: list[str], n: int = 4) -> tuple[list[str], str]:
    others = [p for p in pool if p != correct]
    picked = list(rng.choice(others, size=min(n - 1, len(others)), replace=False)) + [correct]
    order = rng.permutation(len(picked))
    options = [str(picked[i]) for i in order]
    return options, option_letter(options.index(correct))


def article(name: str) -> str:
    """"a red square", "an orange circle"."""
    return ("an " if name[:1] in "aeiou" else "a ") + name


def inventory(scene: Scene) -> str:
    """The shapes of the clip in order of appearance ("a red square and a blue circle"): the one-line
    caption that pretraining and perception alignment teach."""
    return _and([article(o.name) for o in scene.by_appearance()])


def appearance(obj: SceneObject) -> str:
    """The first step of a chain: when the object asked about is on screen, the one fact every task's
    reasoning starts from (here and in videoreasoner/data/world/long.py: any object with name, enter
    and exit). Chains state only what the question needs: a longer first step (an inventory
    of the clip, the edges of entry and exit) gave a 1 M-parameter model more to get wrong before the
    answer, and SFT on it scored 0.05 AM lower over three seeds (README, "Short chains")."""
    return f"The {obj.name} appears at {fmt_s(obj.enter)} s and vanishes at {fmt_s(obj.exit)} s"


def _appearance_with_edges(obj: SceneObject) -> str:
    """The first step of a direction chain: the edges of entry and exit, from which the direction follows."""
    return (f"The {obj.name} appears at the {obj.entry} edge at {fmt_s(obj.enter)} s and "
            f"vanishes at the {obj.exit_edge} edge at {fmt_s(obj.exit)} s")


def mc_colour(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    options, letter = _options(rng, obj.colour, list(cfg.colours))
    return "multiple_choice", {
        "task": "colour", "question": f"What colour is the {obj.shape}?", "options": options,
        "answer": letter,
        "reasoning": f"{appearance(obj)}. The {obj.shape} is {obj.colour}. "
                     f"Among the options, {obj.colour} is option {letter}."}


def mc_shape(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    options, letter = _options(rng, obj.shape, list(cfg.shapes))
    return "multiple_choice", {
        "task": "shape", "question": f"What shape is the {obj.colour} object?", "options": options,
        "answer": letter,
        "reasoning": f"{appearance(obj)}. The {obj.colour} object is a {obj.shape}. "
                     f"Among the options, {obj.shape} is option {letter}."}


def mc_direction(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    options, letter = _options(rng, obj.direction, list(DIRECTIONS))
    return "multiple_choice", {
        "task": "direction", "question": f"In which direction does the {obj.name} move?",
        "options": options, "answer": letter,
        "reasoning": f"{_appearance_with_edges(obj)}, so it moves {obj.direction}. "
                     f"Among the options, {obj.direction} is option {letter}."}


def mc_order(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item | None:
    ordered = scene.by_appearance()
    if len(ordered) < 2:
        return None
    which = "first" if rng.random() < 0.5 else "last"
    target = ordered[0] if which == "first" else ordered[-1]
    present = {o.name for o in ordered}
    absent = [f"{c} {s}" for c in cfg.colours for s in cfg.shapes if f"{c} {s}" not in present]
    pool = [o.name for o in ordered] + list(rng.choice(absent, size=min(3, len(absent)), replace=False))
    options, letter = _options(rng, target.name, [str(p) for p in pool])
    sequence = ", ".join(f"the {o.name} at {fmt_s(o.enter)} s" for o in ordered)
    return "multiple_choice", {
        "task": "order", "question": f"Which object appears {which}?", "options": options,
        "answer": letter,
        "reasoning": f"The objects appear in this order: {sequence}. The {which} to appear is the "
                     f"{target.name}. Among the options, {target.name} is option {letter}."}


def num_total(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    listed = ", ".join(f"the {o.name} ({fmt_s(o.enter)} to {fmt_s(o.exit)} s)" for o in scene.by_appearance())
    n = len(scene.objects)
    return "numerical", {
        "task": "count", "question": "How many coloured shapes appear in the video? Ignore grey dots.",
        "answer": str(n),
        "reasoning": f"The coloured shapes that appear are {listed}. That makes {n}."}


def num_at_time(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    grid = cfg.boundary_grid_s
    t = round(float(rng.integers(0, round(scene.duration / grid))) * grid, 6)
    seen = scene.visible_at(t)
    names = _and([f"the {o.name}" for o in seen]) if seen else "no coloured shape"
    return "numerical", {
        "task": "count_at_time", "answer": str(len(seen)),
        "question": f"How many coloured shapes are visible at {fmt_s(t)} s? Ignore grey dots.",
        "reasoning": f"At {fmt_s(t)} s the frame shows {names}. That makes {len(seen)}."}


def temporal(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return "temporal_grounding", {
        "task": "when_visible", "question": f"When is the {obj.name} visible?",
        "answer": [obj.enter, obj.exit],
        "reasoning": f"{appearance(obj)}. So it is visible from {fmt_s(obj.enter)} to {fmt_s(obj.exit)} s."}


def _box_times(scene: Scene, obj: SceneObject, step: float) -> list[float]:
    times, t = [], obj.enter
    while t < obj.exit - 1e-9:
        times.append(round(t, 6))
        t += step
    return times


def spatial(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    t = float(rng.choice(_box_times(scene, obj, cfg.box_step_s)))
    box = scene.box_at(obj, t)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return "spatial_grounding", {
        "task": "where_at_time", "question": f"Where is the {obj.name} at {fmt_s(t)} s?",
        "answer": {"time": t, "box": box},
        "reasoning": f"{appearance(obj)}, moving {obj.direction}. At {fmt_s(t)} s its centre is at "
                     f"({cx:.2f}, {cy:.2f}) of the frame, so its box is {fmt_box(box)}."}


def tube(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    times = _box_times(scene, obj, cfg.box_step_s)
    boxes = {fmt_s(t): scene.box_at(obj, t) for t in times}
    first, last = times[0], times[-1]
    return "spatio_temporal_grounding", {
        "task": "track", "question": f"Track the {obj.name}: when is it visible and where is it?",
        "answer": {"span": [obj.enter, obj.exit], "boxes": boxes},
        "reasoning": f"{appearance(obj)}, moving {obj.direction}. It is visible from {fmt_s(obj.enter)} "
                     f"to {fmt_s(obj.exit)} s; its box is {fmt_box(boxes[fmt_s(first)])} at "
                     f"{fmt_s(first)} s and {fmt_box(boxes[fmt_s(last)])} at {fmt_s(last)} s."}


def _motion_sentence(obj: SceneObject) -> str:
    return f"{article(obj.name).capitalize()} moves {obj.direction} from {fmt_s(obj.enter)} s to {fmt_s(obj.exit)} s."


def caption(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    ordered = scene.by_appearance()
    return "free_form", {
        "task": "caption", "question": "Describe what happens in the video.",
        "answer": " ".join(_motion_sentence(o) for o in ordered),
        "reasoning": " ".join(f"{appearance(o)}." for o in ordered)}


def describe_object(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return "free_form", {
        "task": "describe_motion", "question": f"Describe the motion of the {obj.name}.",
        "answer": _motion_sentence(obj), "reasoning": f"{appearance(obj)}."}


def how_long(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    d = obj.exit - obj.enter
    return "regression", {
        "task": "visible_seconds", "question": f"For how many seconds is the {obj.name} visible?",
        "answer": fmt_s(d),
        "reasoning": f"{appearance(obj)}. {fmt_s(obj.exit)} - {fmt_s(obj.enter)} = {fmt_s(d)} seconds."}


def when_appears(scene: Scene, obj: SceneObject, rng, cfg: WorldConfig) -> Item:
    return "regression", {
        "task": "appear_time", "question": f"At what time, in seconds, does the {obj.name} first appear?",
        "answer": fmt_s(obj.enter), "reasoning": f"{appearance(obj)}. So it first appears at {fmt_s(obj.enter)} s."}


Builder = Callable[[Scene, SceneObject, np.random.Generator, WorldConfig], "Item | None"]
BUILDERS: dict[str, tuple[Builder, ...]] = {
    "multiple_choice": (mc_colour, mc_shape, mc_direction, mc_order),
    "numerical": (num_total, num_at_time),
    "temporal_grounding": (temporal,),
    "spatial_grounding": (spatial,),
    "spatio_temporal_grounding": (tube,),
    "free_form": (caption, describe_object),
    "regression": (how_long, when_appears),
}


def reasoning_items(scene: Scene, rng: np.random.Generator, cfg: WorldConfig) -> list[Item]:
    """`cfg.items_per_video[type]` items per problem type, varying the task and the object asked about."""
    items: list[Item] = []
    for problem_type, count in cfg.items_per_video.items():
        builders = BUILDERS.get(problem_type, ())
        for j in range(count):
            if not builders or not scene.objects:
                break
            obj = scene.objects[int(rng.integers(len(scene.objects)))]
            start = int(rng.integers(len(builders)))
            for b in range(len(builders)):  # a builder may not apply (e.g. order needs two objects)
                item = builders[(start + b) % len(builders)](scene, obj, rng, cfg)
                if item is not None:
                    items.append(item)
                    break
    return items
