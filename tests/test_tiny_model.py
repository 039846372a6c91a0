"""The tiny default: tokenizer, processor and model are standard transformers objects that round-trip."""
import pytest

from videoreasoner.core.atomic import read_jsonl
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import build_messages, processor_inputs, sample_video
from tests.helpers_world import TINY_SIZES, make_workspace


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from videoreasoner.training.tiny_model import TinyConfig, build_tiny

    root = make_workspace(tmp_path_factory.mktemp("world"), videos={"train": 2, "val": 1})
    records = read_jsonl(root / "data/validated/train.jsonl")
    model, processor = build_tiny(TinyConfig.from_params(TINY_SIZES), records, VideoConfig())
    return root, records, model, processor


def test_special_tokens_are_single_ids_and_text_round_trips(built):
    from videoreasoner.training.tiny_model import SPECIAL_TOKENS

    _, records, _, processor = built
    tok = processor.tokenizer
    for token in SPECIAL_TOKENS:
        ids = tok(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] < len(tok), token
    text = records[0]["question"] + " <think>a</think><answer>[0.12, 0.50, 0.99, 1.00]</answer>"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_chat_template_trains_the_stop_token(built):
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    processor = built[3]
    assert has_generation_markers(processor.chat_template)
    assert is_chat_template_stop_token_trained(processor)


def test_model_settings_agree_with_tokenizer_and_processor(built):
    _, _, model, processor = built
    cfg, tok = model.config, processor.tokenizer
    assert cfg.text_config.vocab_size == len(tok)
    assert 0 <= cfg.text_config.bos_token_id < len(tok)
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>") == processor.video_token_id
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    vp = processor.video_processor
    v = cfg.vision_config
    assert (v.patch_size, v.spatial_merge_size, v.temporal_patch_size) == (
        vp.patch_size, vp.merge_size, vp.temporal_patch_size) == (14, 2, 2)
    assert vp.size["longest_edge"] == 112 * 112  # set explicitly: the default upscales small frames
    assert v.out_hidden_size == cfg.text_config.hidden_size


def test_save_and_load_through_the_one_loader_gives_the_same_logits(built, tmp_path):
    import torch

    from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor

    root, records, model, processor = built
    save_model_and_processor(model, processor, tmp_path / "base")
    assert (tmp_path / "base/model.safetensors").is_file()
    assert not list((tmp_path / "base").glob("*.py"))  # no remote code
    loaded, loaded_proc = load_model_and_processor(tmp_path / "base", "float32")
    assert type(loaded).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert loaded_proc.chat_template == processor.chat_template
    clip = sample_video(root / records[0]["video"], VideoConfig())
    inputs = processor_inputs(loaded_proc, [build_messages(records[0])], [clip], VideoConfig())
    model.eval(), loaded.eval()
    with torch.no_grad():
        a = model(**inputs).logits
        b = loaded(**inputs).logits
    assert torch.equal(a, b) and torch.isfinite(a).all()


def test_unknown_tiny_size_is_rejected():
    from videoreasoner.training.tiny_model import TinyConfig

    with pytest.raises(ValueError, match="unknown key 'hiddn_size'"):
        TinyConfig.from_params({"hiddn_size": 3})


def test_pixel_statistics_reach_the_saved_processor_and_the_background_enters_as_zero(built, tmp_path):
    """model.tiny pixel_mean/pixel_std replace the CLIP statistics in the saved processor; with the world's
    background as the mean, a background-only patch is all zeros (what the frozen random tower needs)."""
    import numpy as np

    from videoreasoner.training.model_io import load_model_and_processor, save_model_and_processor
    from videoreasoner.training.tiny_model import build_processor
    from videoreasoner.data.world.config import BACKGROUND

    root, records, model, processor = built
    mean, std = [BACKGROUND[0] / 255] * 3, [0.5] * 3
    custom = build_processor(processor.tokenizer, VideoConfig(), mean, std)
    save_model_and_processor(model, custom, tmp_path / "m")
    _, loaded = load_model_and_processor(tmp_path / "m")
    assert list(loaded.video_processor.image_mean) == pytest.approx(mean)
    assert list(loaded.video_processor.image_std) == pytest.approx(std)
    frames = np.full((2, 56, 56, 3), BACKGROUND[0], dtype=np.uint8)
    pixels = loaded.video_processor(videos=[frames], return_tensors="pt", do_sample_frames=False)
    assert float(pixels["pixel_values_videos"].abs().max()) < 1e-6
    clip = processor.video_processor(videos=[frames], return_tensors="pt", do_sample_frames=False)
    assert float(clip["pixel_values_videos"].abs().min()) > 1.0  # CLIP statistics: far from zero


@pytest.mark.parametrize("bad", [{"pixel_mean": [0.1, 0.1]}, {"pixel_std": [0.5, 0.0, 0.5]},
                                 {"pixel_mean": "0.1"}])
def test_bad_pixel_statistics_are_rejected(bad):
    from videoreasoner.training.tiny_model import TinyConfig

    with pytest.raises(ValueError, match=f"model.tiny.{next(iter(bad))}"):
        TinyConfig.from_params(bad)


def test_freezing_the_vision_tower_leaves_the_language_model_trainable(built):
    import copy

    from videoreasoner.training.trl_config import freeze_vision_tower

    model = copy.deepcopy(built[2])
    frozen = freeze_vision_tower(model)
    tower = model.model.visual
    assert frozen == sum(p.numel() for p in tower.parameters()) > 0
    assert not any(p.requires_grad for p in tower.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("model.visual."))
    with pytest.raises(ValueError, match="no vision tower"):
        freeze_vision_tower(model.model.language_model)


def test_format_tags_are_whole_tokens_apart_from_the_answer(built):
    """'<answer>C</answer>' must not tokenize as '>C' (Qwen's pre-tokenizer glues punctuation to letters):
    the tag, the answer and the closing tag are separate tokens, and the tags survive decoding."""
    from videoreasoner.answers.format import FORMAT_TAGS

    tokenizer = built[3].tokenizer
    text = "<think>I see a red square.</think><answer>C</answer>"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    assert [t for t in tokens if t in FORMAT_TAGS] == list(FORMAT_TAGS)
    assert tokens[-3:] == ["<answer>", "C", "</answer>"]
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
