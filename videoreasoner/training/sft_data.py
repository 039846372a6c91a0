"""Supervised data for video chat: dataset rows, the video collator, and a "does it look" loss check.

Rows hold the chat from `videoreasoner.video.inputs.build_messages` with the video block carrying the
file's absolute path, plus an empty `images` column. The empty column makes TRL's SFTTrainer treat
the dataset as a vision dataset (it then skips its text-only tokenisation and keeps the `messages`
column), while decoding happens here, per batch, through the one video-input path.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from videoreasoner.video.config import VideoConfig

from videoreasoner.video.inputs import SampledVideo, build_messages, processor_inputs, sample_video
from videoreasoner.video.invariant import check_rows_have_video, processor_video_token_id

log = logging.getLogger(__name__)
IGNORE_INDEX = -100


def video_path(record: dict, video_root: str | os.PathLike) -> str:
    """Absolute path of a record's video (`video` is relative to the dataset or workspace root)."""
    path = Path(record["video"])
    return str(path if path.is_absolute() else (Path(video_root) / path).resolve())


def to_dataset(records: list[dict], video_root: str | os.PathLike):
    """A datasets.Dataset of {messages, images: []}, one row per record, in record order."""
    from datasets import Dataset

    if not records:
        raise ValueError("no training records")
    rows = [{"messages": build_messages(r, video=video_path(r, video_root)), "images": []} for r in records]
    return Dataset.from_list(rows)


def _video_block_path(messages: list[dict]) -> str:
    for message in messages:
        if isinstance(message["content"], list):
            for block in message["content"]:
                if block.get("type") == "video" and block.get("video"):
                    return block["video"]
    raise ValueError("a training row has no video block with a path")


def _assistant_texts(messages: list[dict]) -> list[str]:
    """The text of each assistant turn as the chat template renders it (its text blocks, joined)."""
    out = []
    for message in messages:
        if message["role"] == "assistant":
            content = message["content"]
            out.append(content if isinstance(content, str) else
                       "".join(b.get("text") or "" for b in content if b.get("type") == "text"))
    return out


class ChatMLAssistantMask:
    """The assistant-only label mask found from token ids: the tokens after each `<|im_start|>assistant\n`
    header up to and including the next `<|im_end|>` (the ChatML layout of Qwen templates).

    Why: transformers computes `return_assistant_tokens_mask` with a Python loop over a tensor of
    character offsets, about 60 % of collating a batch here. `__call__` returns None unless, for every
    row, the masked tokens decode exactly to that row's assistant texts, each followed by `<|im_end|>`;
    the collator then uses the template's `{% generation %}` mask. The collator also compares the two
    masks on its first batch and keeps the template's for good if they differ.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.start = tokenizer.convert_tokens_to_ids("<|im_start|>")
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.header = tokenizer.encode("assistant\n", add_special_tokens=False)
        self.usable = all(isinstance(i, int) and i != tokenizer.unk_token_id for i in (self.start, self.end))

    def __call__(self, input_ids, attention_mask, conversations: list[list[dict]]):
        import torch

        if not self.usable:
            return None
        mask = torch.zeros_like(input_ids)
        h = len(self.header)
        for row, (ids, conv) in enumerate(zip(input_ids.tolist(), conversations)):
            ids = ids[:int(attention_mask[row].sum())]  # right padding
            spans = []
            for p in (i for i, t in enumerate(ids) if t == self.start):
                if ids[p + 1:p + 1 + h] == self.header:
                    first = p + 1 + h
                    last = next((i for i in range(first, len(ids)) if ids[i] == self.end), None)
                    if last is None:  # truncated inside the answer: leave it to the template's mask
                        return None
                    spans.append((first, last + 1))
            texts = _assistant_texts(conv)
            decoded = [self.tokenizer.decode(ids[a:b], skip_special_tokens=False) for a, b in spans]
            if decoded != [t + "<|im_end|>" for t in texts]:
                return None
            for a, b in spans:
                mask[row, a:b] = 1
        return mask


class VideoSFTCollator:
    """Decode each row's video (params `video`), tokenise with the processor, and mask the labels.

    Why not TRL's DataCollatorForVisionLanguageModeling: it only forwards images, and transformers
    cannot load videos by path here (no torchcodec). Labels: -100 on padding and, with
    assistant_only_loss, on everything outside the `{% generation %}` span of the chat template
    (found from the token ids by ChatMLAssistantMask when that provably gives the same mask: it is
    faster). Decoded clips are cached in memory (up to `cache_videos` clips; 8 frames of 112 px ≈ 0.3 MB
    each): the train split has several items per video.
    """

    def __init__(self, processor, video_cfg: VideoConfig, *, assistant_only_loss: bool = True,
                 chat_template: str | None = None, max_length: int | None = None, cache_videos: int = 4096):
        self.processor, self.video_cfg = processor, video_cfg
        self.assistant_only_loss, self.chat_template = assistant_only_loss, chat_template
        self.max_length = max_length
        self.cache_videos = cache_videos
        self._cache: dict[str, SampledVideo] = {}
        self._fast_mask = ChatMLAssistantMask(processor.tokenizer)
        self._video_token = processor_video_token_id(processor)
        self._fast_misses = 0
        self._fast_checked = False

    def video(self, path: str) -> SampledVideo:
        clip = self._cache.get(path)
        if clip is None:
            clip = sample_video(path, self.video_cfg)
            if len(self._cache) < self.cache_videos:
                self._cache[path] = clip
        return clip

    def __call__(self, examples: list[dict], videos: list[SampledVideo] | None = None) -> dict:
        import torch

        conversations = [ex["messages"] for ex in examples]
        if videos is None:
            videos = [self.video(_video_block_path(conv)) for conv in conversations]

        def encode(template_mask: bool):
            return processor_inputs(self.processor, conversations, videos, self.video_cfg,
                                    assistant_mask=template_mask, chat_template=self.chat_template,
                                    max_length=self.max_length)

        fast = self.assistant_only_loss and self._fast_misses < 3  # a template it never fits: stop trying
        batch = encode(self.assistant_only_loss and not fast)
        mask = self._fast_mask(batch["input_ids"], batch["attention_mask"], conversations) if fast else None
        if fast and (mask is None or not self._fast_checked):
            batch = encode(True)
        check_rows_have_video(batch["input_ids"], self._video_token,
                              [getattr(v, "path", f"row {i}") for i, v in enumerate(videos)], "sft batch")
        template = batch.pop("assistant_masks", None)
        if mask is not None and not self._fast_checked:  # once: the template's own mask must agree
            self._fast_checked = True
            if not torch.equal(mask, template):
                log.warning("assistant mask from token ids differs from the chat template's: using the template's")
                self._fast_misses, mask = 3, None
        if fast and mask is None:
            self._fast_misses += 1
        if mask is None:
            mask = template
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        if self.assistant_only_loss:
            labels[mask == 0] = IGNORE_INDEX
        batch["labels"] = labels
        return dict(batch)


def shuffled(clip: SampledVideo, rng: np.random.Generator) -> SampledVideo:
    """The same clip with its frames in a random order that moves at least one frame."""
    n = len(clip.frames)
    order = rng.permutation(n)
    while n > 1 and (order == np.arange(n)).all():
        order = rng.permutation(n)
    return clip.with_frames(clip.frames[order])


def loss_gap(model, collator: VideoSFTCollator, records: list[dict], video_root: str | os.PathLike,
             seed: int = 0) -> dict[str, float]:
    """Mean target loss (nats per token) with shuffled frames minus with the correct frames, over
    `records`. Positive means the model uses the frames' order/content; about 0 means it ignores them."""
    import torch

    if not records:
        return {}
    rng = np.random.default_rng(seed)
    losses = {"correct": [], "shuffled": []}
    model.eval()
    with torch.no_grad():
        for record in records:
            row = {"messages": build_messages(record, video=video_path(record, video_root))}
            clip = collator.video(_video_block_path(row["messages"]))
            for name, video in (("correct", clip), ("shuffled", shuffled(clip, rng))):
                batch = {k: v.to(model.device) if hasattr(v, "to") else v
                         for k, v in collator([row], videos=[video]).items()}
                losses[name].append(float(model(**batch).loss))
    correct, shuffled_loss = float(np.mean(losses["correct"])), float(np.mean(losses["shuffled"]))
    return {"loss_correct_frames": correct, "loss_shuffled_frames": shuffled_loss,
            "loss_gap_shuffled_minus_correct": shuffled_loss - correct, "loss_gap_items": len(records)}
