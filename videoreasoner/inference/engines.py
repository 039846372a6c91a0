"""The inference engine shared by tts and evaluate: batched generation from any checkpoint.

Videos are decoded and tokenised exactly as in training (videoreasoner/video/inputs: params `video`, PyAV
frames, real sampled fps in `video_metadata`), prompts come from videoreasoner/answers/format only. An engine
answers `generate(records, n, decoding, frames)` with, per record, n `Generation`s: the text and the
log-probability (natural log, nats) of every generated token under the model, taken *before*
temperature / top-k / top-p (after the vision tokens are suppressed), so confidences do not depend on
the sampling temperature. `loglik` scores given completions by teacher forcing (verifier scorers).

Backends: `HFEngine` (transformers, CPU or GPU; the default) and `VLLMEngine` (vLLM, GPU; imported only
when selected with `backend: vllm`). `FrameSource` decodes each (video, frame budget) once and caches it,
since many records share a video; a transform (blank / shuffled frames, videoreasoner/inference/controls) gives the
video-blind controls the same timing with other pixels.
"""
from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

from videoreasoner.core.params import read_section
from videoreasoner.inference.hf_batching import LogprobRecorder, repeat_rows
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import (
    VIDEO_KEYS, VISION_TOKENS, SampledVideo, build_messages, processor_inputs, sample_video,
)
from videoreasoner.video.invariant import check_rows_have_video, install_video_invariant, processor_video_token_id

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")

FrameTransform = Callable[[SampledVideo], SampledVideo]


@dataclass(frozen=True)
class Decoding:
    """Decoding parameters (params `tts.decoding` / `eval.decoding`). do_sample False: greedy (the
    sampling fields are then ignored). max_new_tokens counts generated tokens, the end token included."""

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict[str, Any] | None, **overrides: Any) -> "Decoding":
        out = read_section({**(params or {}), **overrides}, cls, "tts.decoding / eval.decoding")
        if out.max_new_tokens < 1 or (out.do_sample and out.temperature <= 0):
            raise ValueError("decoding params: need max_new_tokens >= 1 and temperature > 0 when sampling")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


GREEDY = Decoding()


@dataclass(frozen=True)
class Generation:
    """One completion: its text (special tokens removed) and the log-probability in nats of each
    generated token (the end token included when the model stopped by itself)."""

    text: str
    token_logprobs: tuple[float, ...] = ()

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)

    @property
    def mean_logprob(self) -> float:
        """Mean log-probability per token (nats); -inf for an empty completion."""
        return sum(self.token_logprobs) / len(self.token_logprobs) if self.token_logprobs else -math.inf


class FrameSource:
    """Sampled frames per (record video, frame budget), decoded once and cached (LRU).

    `frames=None` samples as params `video` says; an integer asks for exactly that many frames
    (min_frames = max_frames = budget, rounded down to the temporal patch; fewer if the file is shorter).
    Views made by `with_transform` share the cache of decoded frames and apply `transform` on top.
    """

    def __init__(self, video: VideoConfig, video_root: str | Path = ".", transform: FrameTransform | None = None,
                 cache_size: int = 256, _cache: OrderedDict | None = None):
        self.video = video
        self.video_root = Path(video_root)
        self.transform = transform
        self.cache_size = cache_size
        self._cache: OrderedDict = _cache if _cache is not None else OrderedDict()

    def with_transform(self, transform: FrameTransform | None) -> "FrameSource":
        return FrameSource(self.video, self.video_root, transform, self.cache_size, self._cache)

    def config_for(self, frames: int | None) -> VideoConfig:
        if frames is None:
            return self.video
        if frames < self.video.temporal_patch_size:
            raise ValueError(f"frame budget {frames} is below the temporal patch ({self.video.temporal_patch_size})")
        return replace(self.video, min_frames=int(frames), max_frames=int(frames))

    def get(self, record: dict, frames: int | None = None) -> SampledVideo:
        path = self.video_root / str(record["video"])
        key = (str(path), frames)
        clip = self._cache.get(key)
        if clip is None:
            clip = sample_video(path, self.config_for(frames))
            self._cache[key] = clip
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return self.transform(clip) if self.transform else clip


class Engine(Protocol):
    """What strategies need from a backend (HFEngine, VLLMEngine, or a fake in tests)."""

    frames: FrameSource
    model_version: str

    def generate(self, records: Sequence[dict], *, n: int = 1, decoding: Decoding = GREEDY,
                 frames: int | None = None, desc: str = "generate") -> list[list[Generation]]: ...

    def loglik(self, records: Sequence[dict], completions: Sequence[str], *,
               frames: int | None = None) -> list[Generation]: ...

    def with_frames(self, frames: FrameSource) -> "Engine": ...


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, leave=False, mininterval=2.0)


class HFEngine:
    """transformers backend. batch_size counts sequences per forward (prompts × samples)."""

    def __init__(self, model, processor, frames: FrameSource, *, batch_size: int = 16, progress: bool = True,
                 model_version: str = "unknown"):
        self.model = model.eval()
        install_video_invariant(model)  # also for models built or loaded elsewhere (tests, the pyfunc)
        self.processor = processor
        self._video_token = processor_video_token_id(processor)
        self.frames = frames
        self.batch_size = max(1, int(batch_size))
        self.progress = progress
        self.model_version = model_version
        tok = processor.tokenizer
        ids = {tok.convert_tokens_to_ids(t) for t in VISION_TOKENS}
        self._suppress = sorted(i for i in ids if isinstance(i, int) and i >= 0 and i != tok.unk_token_id)
        eos = model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._pad = model.generation_config.pad_token_id if model.generation_config.pad_token_id is not None \
            else tok.pad_token_id

    @classmethod
    def from_checkpoint(cls, path: str | Path, video: VideoConfig, video_root: str | Path = ".", *,
                        dtype: str = "float32", **kwargs: Any) -> "HFEngine":
        from videoreasoner.training.model_io import load_model_and_processor

        model, processor = load_model_and_processor(path, dtype)
        kwargs.setdefault("model_version", str(path))
        return cls(model, processor, FrameSource(video, video_root), **kwargs)

    def with_frames(self, frames: FrameSource) -> "HFEngine":
        return HFEngine(self.model, self.processor, frames, batch_size=self.batch_size, progress=self.progress,
                        model_version=self.model_version)

    def _encode(self, records: Sequence[dict], frames: int | None, targets: Sequence[str] | None = None):
        videos = [self.frames.get(r, frames) for r in records]
        convs = [build_messages(r, None, with_target=False) for r in records]
        if targets is not None:
            convs = [c + [{"role": "assistant", "content": [{"type": "text", "text": t}]}]
                     for c, t in zip(convs, targets)]
        batch = processor_inputs(self.processor, convs, videos, self.frames.video,
                                 add_generation_prompt=targets is None, padding_side="left")
        check_rows_have_video(batch["input_ids"], self._video_token,
                              [f"{r.get('id')} ({r.get('video')})" for r in records], "inference batch")
        return batch

    def generate(self, records: Sequence[dict], *, n: int = 1, decoding: Decoding = GREEDY,
                 frames: int | None = None, desc: str = "generate") -> list[list[Generation]]:
        """n completions per record (greedy: n identical copies are not generated, n must be 1)."""
        import torch

        if not decoding.do_sample and n != 1:
            raise ValueError("greedy decoding gives one completion per record; ask for n=1 or sample")
        per_batch = max(1, self.batch_size // n)
        out: list[list[Generation]] = []
        with _progress(len(records), desc, self.progress) as bar, torch.inference_mode():
            for start in range(0, len(records), per_batch):
                chunk = records[start:start + per_batch]
                batch = self._encode(chunk, frames)
                inputs = repeat_rows(batch, n, self.model.device)
                recorder = LogprobRecorder(inputs["input_ids"].shape[1])
                if decoding.do_sample:
                    torch.manual_seed(decoding.seed + start)
                sampling = dict(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p,
                                top_k=decoding.top_k) if decoding.do_sample else dict(do_sample=False)
                seqs = self.model.generate(
                    **inputs, max_new_tokens=decoding.max_new_tokens, suppress_tokens=self._suppress,
                    logits_processor=[recorder], pad_token_id=self._pad, **sampling)
                logps = recorder.finish(seqs)
                gens = self._decode(seqs[:, inputs["input_ids"].shape[1]:], logps)
                out.extend(gens[i * n:(i + 1) * n] for i in range(len(chunk)))
                bar.update(len(chunk))
        return out

    def _decode(self, new_tokens, logps) -> list[Generation]:
        """Cut each row after its first end token (kept in the count) and decode the text."""
        gens = []
        for row, lp in zip(new_tokens.tolist(), logps.tolist()):
            length = next((i + 1 for i, t in enumerate(row) if t in self._eos), len(row))
            text = self.processor.tokenizer.decode(row[:length], skip_special_tokens=True)
            gens.append(Generation(text, tuple(lp[:length])))
        return gens

    def loglik(self, records: Sequence[dict], completions: Sequence[str], *,
               frames: int | None = None) -> list[Generation]:
        """Teacher-forced log-probability of each completion (plus the end token) after its prompt."""
        import torch

        out: list[Generation] = []
        with torch.inference_mode():
            for start in range(0, len(records), self.batch_size):
                recs, texts = records[start:start + self.batch_size], completions[start:start + self.batch_size]
                prompt_lens = self._encode(recs, frames)["attention_mask"].sum(dim=1).tolist()
                batch = self._encode(recs, frames, targets=texts)
                inputs = {k: v.to(self.model.device) for k, v in batch.items() if hasattr(v, "to")}
                logits = self.model(**inputs).logits.float()
                logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(
                    2, inputs["input_ids"][:, 1:, None]).squeeze(2)
                lengths = inputs["attention_mask"].sum(dim=1).tolist()
                width = inputs["input_ids"].shape[1]
                for i, text in enumerate(texts):
                    # left padding: the row's tokens are the last lengths[i]; the target follows the prompt
                    # and ends with <|im_end|> and the template's newline (the newline is not scored).
                    first = width - lengths[i] + prompt_lens[i]
                    target = logp[i, first - 1:width - 2].tolist()
                    out.append(Generation(text, tuple(target)))
        return out


class VLLMEngine:
    """vLLM backend for GPU machines (same interface). vllm is imported here only, when selected.

    Prompts are rendered with the checkpoint's own chat template; frames come from the same
    FrameSource and go in as `multi_modal_data` with their real fps in the video metadata.
    """

    def __init__(self, path: str | Path, frames: FrameSource, *, model_version: str | None = None,
                 **llm_kwargs: Any):
        try:
            import vllm
        except ImportError as exc:  # pragma: no cover - only on GPU machines with vllm installed
            raise RuntimeError("inference backend 'vllm' selected but vllm is not installed") from exc
        from videoreasoner.training.model_io import load_processor, resolve

        self._vllm = vllm
        self.path = resolve(path)
        self.frames = frames
        self.model_version = model_version or str(path)
        self.processor = load_processor(self.path)
        # Same rules as videoreasoner.training.model_io: weights from safetensors only, never remote code.
        llm_kwargs = {**llm_kwargs, "load_format": "safetensors", "trust_remote_code": False}
        self.llm = llm_kwargs.pop("_llm", None) or vllm.LLM(model=self.path, limit_mm_per_prompt={"video": 1},
                                                            **llm_kwargs)

    def with_frames(self, frames: FrameSource) -> "VLLMEngine":
        clone = object.__new__(VLLMEngine)
        clone.__dict__.update(self.__dict__, frames=frames)
        return clone

    def _prompt(self, record: dict, frames: int | None, target: str | None = None) -> dict:
        clip = self.frames.get(record, frames)
        messages = build_messages(record, None, with_target=False)
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return {"prompt": text + (target or ""), "multi_modal_data": {"video": [(clip.frames, clip.metadata())]}}

    def generate(self, records: Sequence[dict], *, n: int = 1, decoding: Decoding = GREEDY,
                 frames: int | None = None, desc: str = "generate") -> list[list[Generation]]:
        params = self._vllm.SamplingParams(
            n=n, max_tokens=decoding.max_new_tokens, logprobs=0, seed=decoding.seed,
            temperature=decoding.temperature if decoding.do_sample else 0.0,
            top_p=decoding.top_p if decoding.do_sample else 1.0,
            top_k=decoding.top_k if decoding.do_sample and decoding.top_k > 0 else -1)
        outputs = self.llm.generate([self._prompt(r, frames) for r in records], params, use_tqdm=True)
        result = []
        for output in outputs:
            gens = []
            for c in output.outputs:
                lps = tuple(next(iter(step.values())).logprob if step else 0.0 for step in (c.logprobs or []))
                gens.append(Generation(c.text, lps))
            result.append(gens)
        return result

    def loglik(self, records: Sequence[dict], completions: Sequence[str], *,
               frames: int | None = None) -> list[Generation]:
        params = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        out = []
        for record, text in zip(records, completions):
            n_prompt = len(self.llm.generate([self._prompt(record, frames)], params, use_tqdm=False)[0]
                           .prompt_token_ids)
            full = self.llm.generate([self._prompt(record, frames, text)], params, use_tqdm=False)[0]
            lps = [next(iter(step.values())).logprob for step in full.prompt_logprobs[n_prompt:] if step]
            out.append(Generation(text, tuple(lps)))
        return out


def load_engine(path: str | Path, video: VideoConfig | dict[str, Any] | None = None, video_root: str | Path = ".",
                *, backend: str = "hf", dtype: str | None = None, batch_size: int = 16, progress: bool = True,
                model_version: str | None = None, torch_threads: int | None = None) -> Engine:
    """An engine on the checkpoint at `path` (a save_pretrained directory, a pointer, or a hub id).

    `video`: a VideoConfig, or params.yaml sections {"video": …, "compute": …, "eval": …} (the
    registered pyfunc passes those), from which video, dtype (compute.dtype), backend, batch_size and
    torch_threads (eval) are read unless given here. torch_threads: CPU threads for torch (1 is several
    times faster than the default on a small shared machine; None leaves torch's setting).
    """
    if isinstance(video, dict) and "video" in video:
        sections = video
        video = VideoConfig.from_params(sections.get("video"))
        ev = sections.get("eval") or {}
        dtype = dtype or (sections.get("compute") or {}).get("dtype")
        backend = ev.get("backend", backend)
        batch_size = ev.get("batch_size", batch_size)
        torch_threads = torch_threads if torch_threads is not None else ev.get("torch_threads")
    elif not isinstance(video, VideoConfig):
        video = VideoConfig.from_params(video)
    dtype = dtype or "float32"
    version = model_version or str(path)
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
    if backend == "hf":
        t0 = time.perf_counter()
        engine = HFEngine.from_checkpoint(path, video, video_root, dtype=dtype, batch_size=batch_size,
                                          progress=progress, model_version=version)
        log.info("loaded %s (hf, %s) in %.1f s", path, dtype, time.perf_counter() - t0)
        return engine
    if backend == "vllm":
        return VLLMEngine(path, FrameSource(video, video_root), model_version=version, dtype=dtype)
    raise ValueError(f"inference backend {backend!r} unknown (known: {BACKENDS})")
