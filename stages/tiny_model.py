"""Build the tiny default model from scratch: a byte-level BPE tokenizer trained on the project's own
text, the standard Qwen2.5-VL processor around it, and a small randomly initialised Qwen2.5-VL.

Nothing here is custom at load time: the result is saved with `save_pretrained` and every stage loads
it through `stages.model_io.load_model_and_processor` like any hub checkpoint. Sizes come from params
`model.tiny` (DESIGN.md section 6: text 128 wide × 4 layers, vision 64 wide × 2 layers, ≈1.1 M weights).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from stages.answer_format import ANSWER_INSTRUCTIONS, THINK_INSTRUCTION
from stages.video_inputs import VideoConfig, assistant_text, user_text

log = logging.getLogger(__name__)

# Qwen2.5-VL's special tokens, in Qwen's id order (ids here are small: they come first in the vocab).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)

# The Qwen2.5-VL chat layout with `{% generation %}` markers around each assistant turn (content and
# its <|im_end|>), so TRL's assistant-only loss trains the model to stop. No default system prompt:
# prompts are defined in stages/answer_format.py only. Only the block `type` decides its rendering,
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
    seed: int = 0
    extra_text: list[str] = field(default_factory=list)  # more tokenizer training text, if any

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "TinyConfig":
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(params) - known):
            raise ValueError(f"params model.tiny: unknown key '{unknown[0]}' (known: {sorted(known)})")
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
    standard `Qwen2Tokenizer` with Qwen's chat and vision special tokens."""
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
    tokenizer.chat_template = CHAT_TEMPLATE
    log.info("tokenizer: %d tokens (BPE target %d)", len(tokenizer), vocab_size)
    return tokenizer


def _merges(bpe) -> list:
    import json

    return json.loads(bpe.to_str())["model"]["merges"]


def build_processor(tokenizer, video: VideoConfig):
    """The standard Qwen2.5-VL processor; image and video sizes set explicitly from params `video`
    (the library default upscales 112-px frames about threefold)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = video.processor_size()
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    video_processor = Qwen2VLVideoProcessor(
        size=size, patch_size=14, temporal_patch_size=2, merge_size=2, min_frames=video.min_frames,
        max_frames=video.max_frames, fps=video.fps, do_sample_frames=False, cap_pixels_per_frame=True)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               video_processor=video_processor, chat_template=CHAT_TEMPLATE)


def build_model(cfg: TinyConfig, tokenizer):
    """A randomly initialised Qwen2.5-VL (float32) whose vision settings match the processor:
    patch 14, merge 2, temporal patch 2; special token ids from `tokenizer`."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

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
    n = sum(p.numel() for p in model.parameters())
    log.info("tiny Qwen2.5-VL: %.2f M parameters", n / 1e6)
    return model


def build_tiny(cfg: TinyConfig, records: list[dict], video: VideoConfig):
    """Tokenizer, processor and model of the tiny default, trained/initialised from `records`."""
    tokenizer = train_tokenizer(corpus_texts(records, cfg.extra_text), cfg.vocab_size)
    processor = build_processor(tokenizer, video)
    return build_model(cfg, tokenizer), processor
