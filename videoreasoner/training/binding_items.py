"""Binding items for the pretrain stage's video phase: finding the shape a question names.

The world's one-line caption names each shape colour first ("an orange circle and a magenta square").
Trained on it, a language model learns one direction of binding: at a colour word, find that colour's
tokens and read their shape. It never learns the other: "What colour is the circle?" on a clip with two
shapes gets the same answer whichever shape is named (the logits of the two questions agree to two
decimals), so colour sat at 0.76 against 1.00 with one shape on screen. Continuing a trained base does
not teach it either (benchmarks/binding.py prints why): the attention that would select the named shape
and the query that would carry it are both near zero, so neither gets a gradient.

A fresh language model on the trained tower, beside a caption that names each shape first ("circle
orange, square magenta"), learns the missing direction as a sudden jump. Inside the stage, where the tower
learns from scratch at the same time, 2 repeats did not: that base lost shape and order and bound
neither way, so it is not shipped (README, "The shipped base"). With params
`pretrain.binding_items` (repeats; absent or 0: none) the video phase adds, for every train clip, that
caption, and on clips with two or more shapes the world's colour and shape questions asked about every
shape (the world asks about one, drawn at random). Both come from the world's exact scenes, in the
world's own question templates; nothing is added to the data files.
"""
from __future__ import annotations

from typing import Any

from videoreasoner.data.world.perception import colour_word, shape_word
from videoreasoner.data.world.scene import Scene
from videoreasoner.training.sft_data import video_path

CAPTION_QUESTION = "Name each shape in the video with its colour."
KEPT_FIELDS = ("video", "duration", "split", "source", "fps", "width", "height")


def shape_first_caption(scene: Scene) -> str:
    """Each shape, then its colour, in order of appearance: 'circle orange, square magenta'."""
    return ", ".join(f"{obj.shape} {obj.colour}" for obj in scene.by_appearance())


def _item(template: dict, video_id: str, suffix: str, problem_type: str, fields: dict) -> dict:
    return {**{k: template[k] for k in KEPT_FIELDS if k in template}, "id": f"binding:{video_id}:{suffix}",
            "problem_type": problem_type, "question": fields["question"], "answer": fields["answer"],
            "meta": {"kind": "perception", "task": fields["task"], "video_id": video_id}}


def binding_items(records: list[dict], scenes: dict[str, Scene], video_root: Any) -> list[dict]:
    """One shape-first caption per clip of `records` (perception records, one template per clip), and on
    clips with two or more shapes a colour question per shape and a shape question per colour.
    `scenes`: absolute video path -> scene (stages/pretrain.scenes_by_path). Deterministic, in record
    order."""
    items: list[dict] = []
    seen: set[str] = set()
    for record in records:
        video_id = (record.get("meta") or {}).get("video_id")
        if video_id is None:
            raise ValueError(f"record {record.get('id')}: meta.video_id is missing: binding items need the clip")
        if video_id in seen:
            continue
        seen.add(video_id)
        scene = scenes[video_path(record, video_root)]
        if not scene.objects:
            continue
        items.append(_item(record, video_id, "caption", "free_form",
                           {"task": "shape_colours", "question": CAPTION_QUESTION,
                            "answer": shape_first_caption(scene)}))
        if len(scene.objects) < 2:
            continue
        for obj in scene.objects:
            for builder in (colour_word, shape_word):
                problem_type, fields = builder(scene, obj, None, None)
                items.append(_item(record, video_id, f"{fields['task']}:{obj.shape}", problem_type, fields))
    return items
