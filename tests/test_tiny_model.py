"""The tiny default: tokenizer, processor and model are standard transformers objects that round-trip."""
import pytest

from stages.atomic import read_jsonl
from stages.video_inputs import VideoConfig, build_messages, processor_inputs, sample_video
from tests.helpers_world import TINY_SIZES, make_workspace


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from stages.tiny_model import TinyConfig, build_tiny

    root = make_workspace(tmp_path_factory.mktemp("world"), videos={"train": 2, "val": 1})
    records = read_jsonl(root / "data/validated/train.jsonl")
    model, processor = build_tiny(TinyConfig.from_params(TINY_SIZES), records, VideoConfig())
    return root, records, model, processor


def test_special_tokens_are_single_ids_and_text_round_trips(built):
    from stages.tiny_model import SPECIAL_TOKENS

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

    from stages.model_io import load_model_and_processor, save_model_and_processor

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
    from stages.tiny_model import TinyConfig

    with pytest.raises(ValueError, match="unknown key 'hiddn_size'"):
        TinyConfig.from_params({"hiddn_size": 3})
