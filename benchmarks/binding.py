"""Does the model find the shape a question names? Both directions of binding, and the attention behind them.

On val clips with two or more shapes, every shape is asked about both ways, in the world's templates:
"What colour is the circle?" (find a shape, read its colour) and "What shape is the orange object?" (find a
colour, read its shape). Teacher-forced, so no decoding choice enters:
- right: the first answer token is the right word's, among the words of its kind;
- same answer for every shape: the clips where the model gives one answer to all of the clip's questions of
  a direction, i.e. ignores which shape or colour was named (a model that reads the named one never does);
- attention: at the token that predicts the answer, each head's attention on the video tokens showing the
  named shape and on those showing the clip's other shapes (tokens with any pixel of the shape, from the
  world's exact scene). A head that selects the named shape puts much more on it than on the others.

    python benchmarks/binding.py [--models pretrained/tiny-video-base models/base] [--clips 60]
    python benchmarks/binding.py --smoke     # a generated world and a random tiny model (a quick check)

Run it in a workspace where `dvc repro` has written data/validated/ (and the models named).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.training import scratch_workspace, smoke_models, table  # noqa: E402
from videoreasoner.core.params import load_params  # noqa: E402
from videoreasoner.data.world.config import PALETTE, SHAPES  # noqa: E402

DIRECTIONS = {"colour_word": "colour of the named shape", "shape_word": "shape of the named colour"}


def questions(records: list[dict], scenes: dict, clips: int) -> list[dict]:
    """Both directions about every shape of the first `clips` clips with two or more shapes."""
    from videoreasoner.training.binding_items import binding_items

    items = [i for i in binding_items(records, scenes, ".") if i["meta"]["task"] in DIRECTIONS]
    keep = set(list(dict.fromkeys(i["meta"]["video_id"] for i in items))[:clips])
    return [i for i in items if i["meta"]["video_id"] in keep]


def first_tokens(tokenizer, words) -> dict[str, int]:
    """Each word's first token right after `<answer>` (the words of one kind must differ in it)."""
    out = {w: tokenizer("<answer>" + w, add_special_tokens=False)["input_ids"][1] for w in words}
    if len(set(out.values())) != len(out):
        raise ValueError(f"answer words share a first token: {out}")
    return out


def named_mask(scene, item: dict, timestamps, grid) -> tuple:
    """(tokens showing the named shape, tokens showing the clip's other shapes) as numpy bool arrays."""
    from videoreasoner.training.dense_targets import token_targets

    named = next(o for o in scene.objects if item["answer"] in (o.colour, o.shape))

    def showing(objects) -> "object":
        colour, _ = token_targets(dataclasses.replace(scene, objects=tuple(objects), distractors=()), timestamps, grid)
        return colour[:, 1:].sum(1) > 0

    return showing([named]), showing([o for o in scene.objects if o is not named])


def score(model, processor, items: list[dict], scenes: dict, video_cfg, batch_size: int = 16) -> dict:
    """{direction: {"right", "same", "n", "named" (L×H mean attention), "other"}} (see the module doc)."""
    import numpy as np
    import torch

    from videoreasoner.training.sft_data import VideoSFTCollator, to_dataset, video_path

    model.config._attn_implementation = "eager"  # attention weights are returned only by the eager kernel
    model.config.text_config._attn_implementation = "eager"
    collator = VideoSFTCollator(processor, video_cfg, assistant_only_loss=True, chat_template=None, max_length=1024)
    tok = processor.tokenizer
    answer_id = tok("<answer>", add_special_tokens=False)["input_ids"][0]
    words = {"colour_word": first_tokens(tok, PALETTE), "shape_word": first_tokens(tok, SHAPES)}
    rows = to_dataset(items, ".")
    said, named_att, other_att = {}, {d: [] for d in DIRECTIONS}, {d: [] for d in DIRECTIONS}
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        batch = collator([rows[i] for i in range(start, start + len(chunk))])
        batch.pop("labels")
        with torch.no_grad():
            out = model(**batch, output_attentions=True)
        attention = torch.stack(out.attentions, 1)  # B, layers, heads, T, T
        for row, item in enumerate(chunk):
            ids = batch["input_ids"][row]
            at = int((ids == answer_id).nonzero().max())  # the assistant's <answer>: predicts the first word
            direction = item["meta"]["task"]
            candidates = words[direction]
            said[item["id"]] = max(candidates, key=lambda w: float(out.logits[row, at, candidates[w]]))
            video = (ids == model.config.video_token_id).nonzero().squeeze(-1)
            path = video_path(item, ".")
            grid = tuple(int(x) for x in batch["video_grid_thw"][row])
            named, other = named_mask(scenes[path], item, collator.video(path).timestamps, grid)
            weights = attention[row, :, :, at, :][..., video].numpy()  # layers, heads, video tokens
            named_att[direction].append(weights[..., named].sum(-1))
            other_att[direction].append(weights[..., other].sum(-1))
    result = {}
    for direction in DIRECTIONS:
        chosen = [i for i in items if i["meta"]["task"] == direction]
        by_clip: dict[str, set] = {}
        for item in chosen:
            by_clip.setdefault(item["meta"]["video_id"], set()).add(said[item["id"]])
        result[direction] = {
            "right": float(np.mean([said[i["id"]] == i["answer"] for i in chosen])),
            "same": float(np.mean([len(s) == 1 for s in by_clip.values()])), "n": len(chosen),
            "clips": len(by_clip), "named": np.mean(named_att[direction], 0), "other": np.mean(other_att[direction], 0)}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["pretrained/tiny-video-base"])
    parser.add_argument("--clips", type=int, default=60, help="val clips with two or more shapes")
    parser.add_argument("--smoke", action="store_true", help="a generated world and a random tiny model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from stages.pretrain import scenes_by_path
    from videoreasoner.core.atomic import read_jsonl
    from videoreasoner.data.selection import select_records
    from videoreasoner.data.world.config import WorldConfig
    from videoreasoner.training.model_io import load_model_and_processor
    from videoreasoner.video.config import VideoConfig

    params = load_params(ROOT / "params.yaml")
    with scratch_workspace("vr-bench-binding-", args.smoke) as work:
        if work is not None:
            args.models = smoke_models(work, params, (1,), {"train": 1, "val": 6, "test": 1})
            args.clips = 3
        world = WorldConfig.from_params(params["data"]["synthetic"])
        video_cfg = VideoConfig.from_params(params["video"])
        val = select_records(read_jsonl("data/validated/val.jsonl"), "perception")
        scenes = scenes_by_path(val, world, Path("."))
        items = questions(val, scenes, args.clips)
        print(f"{len(items)} questions on {len({i['meta']['video_id'] for i in items})} val clips with two or "
              "more shapes, every shape asked both ways; teacher-forced first answer token")
        summary, heads = [], []
        for path in args.models:
            model, processor = load_model_and_processor(path, params["compute"].get("dtype", "float32"))
            model.eval()
            result = score(model, processor, items, scenes, video_cfg)
            for direction, label in DIRECTIONS.items():
                r = result[direction]
                summary.append((path, label, f"{r['right']:.2f} ({r['n']})", f"{r['same']:.2f} ({r['clips']})"))
            colour, shape = result["colour_word"], result["shape_word"]
            for layer in range(colour["named"].shape[0]):
                for head in range(colour["named"].shape[1]):
                    heads.append((path, f"{layer}.{head}",
                                  f"{colour['named'][layer, head]:.2f} / {colour['other'][layer, head]:.2f}",
                                  f"{shape['named'][layer, head]:.2f} / {shape['other'][layer, head]:.2f}"))
        print(table(summary, header=("model", "direction", "right", "same answer for every shape of the clip")))
        print("\nattention at the answer on the named shape / the other shapes (layer.head):")
        print(table(heads, header=("model", "head", "colour of the named shape", "shape of the named colour")))


if __name__ == "__main__":
    main()
