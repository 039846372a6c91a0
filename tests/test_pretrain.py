"""pretrain: dense targets line up with the pixels the tower sees; a few-step run writes a plain Qwen2.5-VL
with a manifest whose hashes hold; a world that does not match its records is refused."""
import json

import numpy as np
import pytest

from stages.pretrain import PretrainRun, run, scenes_by_path
from tests.helpers_world import TINY_SIZES, VIDEO, make_workspace, trl_params
from videoreasoner.core.atomic import read_jsonl
from videoreasoner.data.selection import select_records
from videoreasoner.data.world.config import PALETTE, WorldConfig
from videoreasoner.training.base_manifest import MANIFEST, check_files, records_digest
from videoreasoner.training.binding_items import CAPTION_QUESTION, binding_items
from videoreasoner.training.dense_targets import COLOUR_CLASSES, token_targets

# make_workspace's world (tests/helpers_world.py), as params data.synthetic
WORLD = {"seed": 3, "videos": {"train": 3, "val": 1}, "workers": 1, "objects": [1, 4], "box_step_s": 1.0}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("ws"))


def _pixel_colour_shares(pixels: np.ndarray) -> np.ndarray:
    """N×P×3 RGB -> N×len(COLOUR_CLASSES) shares of pixels within 60 of each palette colour (else none)."""
    palette = np.array([PALETTE[c] for c in COLOUR_CLASSES[1:]], dtype=float)
    dist = np.linalg.norm(pixels[:, :, None, :] - palette[None, None], axis=-1)
    cls = np.where(dist.min(-1) < 60, dist.argmin(-1) + 1, 0)
    return np.stack([(cls == k).mean(axis=1) for k in range(len(COLOUR_CLASSES))], axis=1)


def test_dense_targets_describe_the_pixels_of_each_merged_token(workspace):
    """Undo the processor's normalisation and patch layout: each merged token's decoded pixels show the
    colours its target says, token by token (a wrong token order or time would fail)."""
    from videoreasoner.data.world.streams import scene_for
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny
    from videoreasoner.video.config import VideoConfig
    from videoreasoner.video.inputs import sample_video

    video_cfg = VideoConfig.from_params(VIDEO)
    records = read_jsonl(workspace / "data/validated/train.jsonl")
    _, processor = build_tiny(TinyConfig.from_params(TINY_SIZES), records, video_cfg)
    vp = processor.video_processor
    mean, std = np.array(vp.image_mean), np.array(vp.image_std)
    checked = 0
    for index in range(WORLD["videos"]["train"]):
        scene, _ = scene_for(WorldConfig.from_params(WORLD), "train", index)
        clip = sample_video(workspace / f"data/raw/synthetic/videos/train-{index:05d}.mp4", video_cfg)
        out = vp(videos=[clip.frames], return_tensors="np", **{"video_metadata": [clip.metadata()]})
        grid = tuple(int(x) for x in out["video_grid_thw"][0])
        values = np.asarray(out["pixel_values_videos"]).reshape(-1, 3, 2, 14, 14)  # patch, C, frame, y, x
        rgb = (values.transpose(0, 2, 3, 4, 1) * std + mean) * 255.0  # patch, frame, y, x, C
        tokens = rgb.reshape(-1, 4 * 2 * 14 * 14, 3)  # 2x2 patches per merged token, in the tower's order
        colour, shape = token_targets(scene, clip.timestamps, grid)
        assert colour.shape == (len(tokens), len(COLOUR_CLASSES)) and shape.shape[0] == len(tokens)
        np.testing.assert_allclose(colour.sum(1), 1.0, atol=1e-6)
        seen = _pixel_colour_shares(tokens)
        np.testing.assert_allclose(seen[:, 1:], colour[:, 1:], atol=0.08)  # H.264 edges blur a few pixels
        checked += int((colour[:, 1:] > 0.2).any(1).sum())
    assert checked >= 3  # objects were actually on screen in the frames compared


def test_a_few_steps_write_a_plain_base_and_a_manifest_that_checks(workspace, tmp_path):
    import safetensors.torch

    from videoreasoner.training.model_io import load_model_and_processor

    out = tmp_path / "base"
    manifest = run(PretrainRun(
        pretrain={**trl_params(3), "dense_weight": 1.0, "storage_dtype": "float16", "probe_items": None,
                  "gates": {"min_gap": 0.0, "targets": {}}, "vision_learning_rate": 2e-3, "binding_items": 2,
                  "language_warmup": {"max_steps": 2, "learning_rate": 3e-4, "batch_size": 4}},
        tiny=TINY_SIZES, video=VIDEO, world=WORLD, train_file=workspace / "data/validated/train.jsonl",
        val_file=workspace / "data/validated/val.jsonl", video_root=workspace, out_dir=out,
        checkpoint_dir=tmp_path / "ckpt", tracking=False))
    assert manifest["training"]["steps"] == 3
    assert manifest["language_warmup"]["steps"] == 2 and [s for s, _ in manifest["language_warmup"]["curve"]] == [0, 2]
    perception = select_records(read_jsonl(workspace / "data/validated/train.jsonl"), "perception")
    assert manifest["data"]["train_records"] == records_digest(perception)
    scenes = scenes_by_path(perception, WorldConfig.from_params(WORLD), workspace)
    assert manifest["data"]["n_binding_items"] == 2 * len(binding_items(perception, scenes, workspace)) > 0
    assert manifest["command"] == "python -m stages.pretrain" and manifest["params"]["digest"]
    val_tasks = {r["meta"]["task"] for r in select_records(read_jsonl(workspace / "data/validated/val.jsonl"),
                                                            "perception")}
    assert set(manifest["perception"]["tasks"]) == val_tasks >= {"colour_word", "shape_word", "count_direct"}
    check_files(out)
    tensors = safetensors.torch.load_file(out / "model.safetensors")
    assert not [k for k in tensors if "dense_head" in k]  # the training head is not shipped
    assert {str(t.dtype) for t in tensors.values()} == {"torch.float16"}
    model, _ = load_model_and_processor(out)  # strict: no missing or unexpected keys
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    (out / "tokenizer_config.json").write_text((out / "tokenizer_config.json").read_text() + " ")
    with pytest.raises(ValueError, match="tokenizer_config.json: changed"):
        check_files(out)
    assert json.loads((out / MANIFEST).read_text())["files"]


def test_the_dense_loss_reaches_the_optimizer_and_vision_trains_at_its_own_rate(workspace, tmp_path):
    """The colour/shape head gets gradients only from the dense loss: its weights must move in training.
    With `vision_learning_rate`, the tower, merger and head are optimised at it, everything else at
    `learning_rate`."""
    from stages import pretrain as stage

    seen = {}
    original = stage.train

    def spy(model, *args, trainer_class, **kwargs):
        names = {id(p): n for n, p in model.named_parameters()}

        class Recording(trainer_class):
            def create_optimizer(self, model=None):
                optimizer = super().create_optimizer(model)
                seen["groups"] = [(g["part"], g["lr"], {names[id(p)] for p in g["params"]})
                                  for g in optimizer.param_groups]
                return optimizer

        before = {k: v.clone() for k, v in model.dense_head.state_dict().items()}
        trained, result = original(model, *args, trainer_class=Recording, **kwargs)
        seen["moved"] = [k for k, v in trained.dense_head.state_dict().items() if not np.allclose(v, before[k])]
        return trained, result

    stage.train = spy
    try:
        run(PretrainRun(pretrain={**trl_params(2), "probe_items": 2, "vision_learning_rate": 2e-3},
                        tiny=TINY_SIZES, video=VIDEO, world=WORLD,
                        train_file=workspace / "data/validated/train.jsonl",
                        val_file=workspace / "data/validated/val.jsonl", video_root=workspace,
                        out_dir=tmp_path / "base", checkpoint_dir=tmp_path / "ckpt", tracking=False))
    finally:
        stage.train = original
    assert seen["moved"], "the dense head did not train"
    rates = {}
    for part, lr, group in seen["groups"]:
        rates.setdefault(part, set()).add(lr)
        assert all(n.startswith(("model.visual.", "dense_head.")) == (part == "vision") for n in group)
    assert rates == {"vision": {2e-3}, "language": {1e-3}}
    trained = set().union(*(group for _, _, group in seen["groups"]))
    assert {n for n in trained if n.startswith("model.visual.")} and {n for n in trained if "dense_head" in n}


def test_records_from_another_world_are_refused(workspace):
    records = select_records(read_jsonl(workspace / "data/validated/train.jsonl"), "perception")
    with pytest.raises(ValueError, match="generated with other params"):
        scenes_by_path(records, WorldConfig.from_params({**WORLD, "seed": 4}), workspace)


def test_binding_items_name_each_shape_first_and_ask_about_every_shape(workspace):
    """One shape-first caption per clip; on clips with two or more shapes, the colour of every shape and
    the shape of every colour (the world asks about one shape only), with answers from the scene."""
    perception = select_records(read_jsonl(workspace / "data/validated/train.jsonl"), "perception")
    scenes = scenes_by_path(perception, WorldConfig.from_params(WORLD), workspace)
    items = binding_items(perception, scenes, workspace)
    assert len({i["id"] for i in items}) == len(items)
    by_clip: dict[str, list[dict]] = {}
    for item in items:
        assert item["meta"]["kind"] == "perception" and item["video"].endswith(item["meta"]["video_id"] + ".mp4")
        by_clip.setdefault(item["meta"]["video_id"], []).append(item)
    assert len(by_clip) == WORLD["videos"]["train"]
    several = 0
    for video_id, clip_items in by_clip.items():
        scene = scenes[str((workspace / f"data/raw/synthetic/videos/{video_id}.mp4").resolve())]
        caption = [i for i in clip_items if i["question"] == CAPTION_QUESTION]
        assert [c["answer"] for c in caption] == [", ".join(f"{o.shape} {o.colour}" for o in scene.by_appearance())]
        asked = {(i["meta"]["task"], i["question"], i["answer"]) for i in clip_items if i not in caption}
        if len(scene.objects) < 2:
            assert not asked
            continue
        several += 1
        assert asked == ({("colour_word", f"What colour is the {o.shape}? Answer with one word.", o.colour)
                          for o in scene.objects} |
                         {("shape_word", f"What shape is the {o.colour} object? Answer with one word.", o.shape)
                          for o in scene.objects})
    assert several >= 1  # the world drew a clip with two or more shapes
    with pytest.raises(ValueError, match="meta.video_id"):
        binding_items([{**perception[0], "meta": {"kind": "perception"}}], scenes, workspace)
