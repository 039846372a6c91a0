"""Build the tiny default model from scratch: a byte-level BPE tokenizer trained on the project's own
text, the standard Qwen2.5-VL processor around it, and a small randomly initialised Qwen2.5-VL.

Nothing here is custom at load time: the result is saved with `save_pretrained` and every stage loads
it through `videoreasoner.training.model_io.load_model_and_processor` like any hub checkpoint. Sizes come from params
`model.tiny` (text 128 wide × 4 layers, vision 64 wide × 2 layers, ≈1.1 M weights).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from videoreasoner.answers.format import ANSWER_INSTRUCTIONS, FORMAT_TAGS, THINK_INSTRUCTION
from videoreasoner.core.params import check_keys
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import assistant_text, user_text

log = logging.getLogger(__name__)

# Qwen2.5-VL's special tokens, in Qwen's id order (ids here are small: they come first in the vocab).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)

# The Qwen2.5-VL chat layout with `{% generation %}` markers around each assistant turn (content and
# its <|im_end|>), so TRL's assistant-only loss trains the model to stop. No default system prompt:
# prompts are defined in videoreasoner/answers/format.py only. Only the block `type` decides its rendering,
# because dataset rows (Arrow) give every block all keys, most of them None.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for block in content -%}"
    "{%- if block['type'] == 'video' -%}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif block['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif block['type'] == 'text' -%}{{ block['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{ render(message['content']) + '<|im_end|>' }}{%- endgeneration -%}"
    "{%- else -%}{{ render(message['content']) + '<|im_end|>' }}{%- endif -%}"
    "{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class TinyConfig:
    """Sizes of the tiny Qwen2.5-VL (params `model.tiny`). Widths in units, vocab in tokens."""

    PARAMS_SECTION: ClassVar[str] = "model.tiny"

    vocab_size: int = 1024            # BPE target; the real size is what training on the corpus reaches
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 256
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    vision_hidden_size: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    vision_intermediate_size: int = 128
    tokens_per_second: int = 2        # Qwen2.5-VL's temporal position ids per second of video
    # Pixel normalisation of the processor, (x / 255 - mean) / std per channel; null: the library's CLIP
    # statistics (what a pretrained Qwen2.5-VL expects). See build_processor.
    pixel_mean: list[float] | None = field(default_factory=lambda: [0.0627, 0.0627, 0.0627])
    pixel_std: list[float] | None = field(default_factory=lambda: [0.5, 0.5, 0.5])
    seed: int = 1234
    extra_text: list[str] = field(default_factory=list)  # more tokenizer training text, if any

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "TinyConfig":
        params = check_keys(cls.PARAMS_SECTION, params, (f.name for f in fields(cls)))
        for key in ("pixel_mean", "pixel_std"):
            value = params.get(key)
            if value is not None and (not isinstance(value, list) or len(value) != 3
                                      or not all(isinstance(x, (int, float)) for x in value)):
                raise ValueError(f"params model.tiny.{key}: three numbers (R, G, B) or null, got {value!r}")
        if any(x <= 0 for x in params.get("pixel_std") or []):
            raise ValueError("params model.tiny.pixel_std: every value must be > 0")
        return cls(**params)


def corpus_texts(records: Iterable[dict], extra: Iterable[str] = ()) -> Iterator[str]:
    """The tokenizer's training text: prompts (question, options, instructions) and targets of records,
    every answer-format instruction (also for problem types absent from the split), and `extra`."""
    yield THINK_INSTRUCTION
    yield from ANSWER_INSTRUCTIONS.values()
    yield from extra
    for record in records:
        yield user_text(record)
        yield assistant_text(record)


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE (Qwen2's pre-tokenizer: digits split one by one) and wrap it as the
    standard `Qwen2Tokenizer` with Qwen's chat and vision special tokens and the answer-format tags."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    vocab = bpe.get_vocab()
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in _merges(bpe)]
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    # The format tags as whole (non-special, so decoded) tokens: Qwen's pre-tokenizer otherwise glues the
    # answer to the tag ('>C', '>[' ...), and a tiny model that must pick one of '>A'..'>D' before
    # committing to the format was measured to emit a bare '>' and stop: empty answers on every item.
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in FORMAT_TAGS])
    tokenizer.chat_template = CHAT_TEMPLATE
    log.info("tokenizer: %d tokens (BPE target %d)", len(tokenizer), vocab_size)
    return tokenizer


def _merges(bpe) -> list:
    import json

    return json.loads(bpe.to_str())["model"]["merges"]


def build_processor(tokenizer, video: VideoConfig, pixel_mean: list[float] | None = None,
                    pixel_std: list[float] | None = None):
    """The standard Qwen2.5-VL processor; image and video sizes set explicitly from params `video`
    (the library default upscales 112-px frames about threefold).

    pixel_mean/pixel_std (params `model.tiny`) replace the CLIP statistics, which are only right for a
    tower pretrained with them. The tiny tower is random; with the synthetic world's background (16/255)
    as the mean, background patches enter as zeros, so the (bias-free) patch embedding and the frozen
    tower's attention carry only the shapes. Measured (perception-only alignment, frozen tower, 600 steps
    of 8, 10 val counting items): 0.9 with the video vs 0.4 with blank frames; with CLIP statistics 0.4
    either way (the language prior)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = video.processor_size()
    norm = {k: [float(x) for x in v] for k, v in (("image_mean", pixel_mean), ("image_std", pixel_std)) if v}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2, **norm)
    video_processor = Qwen2VLVideoProcessor(
        size=size, patch_size=14, temporal_patch_size=2, merge_size=2, min_frames=video.min_frames,
        max_frames=video.max_frames, fps=video.fps, do_sample_frames=False, cap_pixels_per_frame=True, **norm)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               video_processor=video_processor, chat_template=CHAT_TEMPLATE)


def build_model(cfg: TinyConfig, tokenizer):
    """A randomly initialised Qwen2.5-VL (float32) whose vision settings match the processor:
    patch 14, merge 2, temporal patch 2; special token ids from `tokenizer`."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from videoreasoner.video.invariant import install_video_invariant

    head_dim = cfg.hidden_size // cfg.num_attention_heads
    # Multimodal RoPE splits the rotary half-dimension into (time, height, width) sections.
    half = head_dim // 2
    mrope = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta, "mrope_section": mrope},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        max_window_layers=cfg.num_hidden_layers, use_sliding_window=False,
    )
    vision = dict(
        depth=cfg.vision_depth, hidden_size=cfg.vision_hidden_size, num_heads=cfg.vision_heads,
        intermediate_size=cfg.vision_intermediate_size, out_hidden_size=cfg.hidden_size,
        patch_size=14, spatial_merge_size=2, temporal_patch_size=2, tokens_per_second=cfg.tokens_per_second,
        window_size=112, fullatt_block_indexes=list(range(cfg.vision_depth)),
    )
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(cfg.seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    install_video_invariant(model)  # built here, not loaded through model_io: check its forwards too
    n = sum(p.numel() for p in model.parameters())
    log.info("tiny Qwen2.5-VL: %.2f M parameters", n / 1e6)
    return model


def build_tiny(cfg: TinyConfig, records: list[dict], video: VideoConfig):
    """Tokenizer, processor and model of the tiny default, trained/initialised from `records`."""
    tokenizer = train_tokenizer(corpus_texts(records, cfg.extra_text), cfg.vocab_size)
    processor = build_processor(tokenizer, video, cfg.pixel_mean, cfg.pixel_std)
    return build_model(cfg, tokenizer), processor
