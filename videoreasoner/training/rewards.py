"""GRPO reward functions, found by name: thin wrappers that call the verifiers, never re-score.

Every reward follows TRL's contract `f(completions, **dataset_columns) -> list[float | None]`:
`completions` are strings or conversational lists ([{"role": "assistant", "content": ...}]); the
dataset columns arrive as lists with one entry per completion, and each sample is scored with ITS OWN
`problem_type`. A reward returns None where it does not apply to a sample's type (TRL then leaves it
out of that sample's weighted sum). Columns read: problem_type, answer (or answer_json: the answer as
JSON text, for datasets that need one type per column; grounding answers given as text are decoded
either way), options, duration, fps, frame_times (optional, per sample: the frames the policy saw).

params.yaml `rewards:` holds a list of {name, weight, kwargs}; `build_rewards` turns it into TRL's
`reward_funcs` and `reward_weights`. Task rewards (accuracy, temporal_iou, box_iou, tube_iou, mra,
rouge_official) must not cover the same problem type twice, so no sample is paid twice for one answer:
to use mra, drop regression from accuracy's `types` (rouge_official: drop free_form).
Spans are half-open, [start, end) (videoreasoner/answers/spans.py): the rewards score tubes on the
verifiers' frame sets and so follow that rule without restating it.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from videoreasoner.answers.format import ANSWER_TYPES
from videoreasoner.core.schema import PROBLEM_TYPES
from videoreasoner.answers.verifiers import Verdict, verify, verify_format, verify_length

log = logging.getLogger(__name__)

RewardFn = Callable[..., list[float | None]]
_RECORD_COLUMNS = ("id", "problem_type", "answer", "options", "duration", "fps")
REGISTRY: dict[str, Callable[..., RewardFn]] = {}

DEFAULT_REWARDS: list[dict[str, Any]] = [
    {"name": "format", "weight": 0.5, "kwargs": {}},
    {"name": "accuracy", "weight": 1.0, "kwargs": {"types": list(ANSWER_TYPES)}},
    {"name": "temporal_iou", "weight": 1.0, "kwargs": {"distance_penalty": False}},
    {"name": "box_iou", "weight": 1.0, "kwargs": {}},
    {"name": "tube_iou", "weight": 1.0, "kwargs": {"tiou_weight": 0.0}},
]


def register(name: str) -> Callable[[Callable[..., RewardFn]], Callable[..., RewardFn]]:
    """Decorator: add a reward factory to REGISTRY under `name`."""
    def add(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        if name in REGISTRY:
            raise ValueError(f"reward {name!r} is registered twice")
        REGISTRY[name] = factory
        return factory
    return add


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the last message of a conversational completion
    (content as a string or as a list of {"type": "text", "text": ...} parts).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    return ""


def _samples(completions: list, columns: dict[str, Any]) -> Iterator[tuple[str, dict, dict]]:
    """(text, record, verify options) for each completion, from the per-sample dataset columns."""
    for i, completion in enumerate(completions):
        record = {k: columns[k][i] for k in _RECORD_COLUMNS if columns.get(k) is not None}
        if columns.get("answer_json") is not None and columns["answer_json"][i] is not None:
            record["answer"] = json.loads(columns["answer_json"][i])
        options = {}
        if columns.get("frame_times") is not None and columns["frame_times"][i] is not None:
            options["frame_times"] = list(columns["frame_times"][i])
        yield completion_text(completion), record, options


def _make(name: str, types: tuple[str, ...], score: Callable[[str, dict, dict], float]) -> RewardFn:
    """A TRL reward named `name`: score(text, record, options) for samples of `types`, None elsewhere."""
    def reward(completions: list, **columns: Any) -> list[float | None]:
        if "problem_type" not in columns:
            raise KeyError(f"reward {name!r}: the dataset has no 'problem_type' column")
        return [score(text, rec, opts) if rec.get("problem_type") in types else None
                for text, rec, opts in _samples(completions, columns)]

    reward.__name__ = reward.__qualname__ = name
    reward.problem_types = frozenset(types)  # type: ignore[attr-defined]
    return reward


def _types(types: list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    chosen = tuple(types) if types is not None else default
    unknown = [t for t in chosen if t not in PROBLEM_TYPES]
    if unknown:
        raise ValueError(f"unknown problem types {unknown}; known: {list(PROBLEM_TYPES)}")
    return chosen


def _verdict(text: str, record: dict, opts: dict, **kw: Any) -> Verdict:
    return verify(record, text, **{**kw, **opts})


@register("format")
def format_reward(types: list[str] | None = None, require_parse: bool = True) -> RewardFn:
    """1 for `<think>…</think><answer>…</answer>`; with require_parse the answer must also parse as
    the sample's type (a well-formed box for grounding, one letter for multiple choice...)."""
    def score(text: str, rec: dict, _opts: dict) -> float:
        ptype = rec["problem_type"] if require_parse else None
        return verify_format(text, ptype, rec.get("options")).score
    return _make("format", _types(types, PROBLEM_TYPES), score)


@register("accuracy")
def accuracy_reward(types: list[str] | None = None, strict: bool = True, fps: float | None = None,
                    distance_penalty: bool = False) -> RewardFn:
    """The evaluation score (videoreasoner.answers.verifiers.verify) of each sample, for the listed types (all by
    default). fps: the frame rate the policy sees, for spatio-temporal frames (else the record's)."""
    kw = {"strict": strict, "distance_penalty": distance_penalty, **({"fps": fps} if fps else {})}
    return _make("accuracy", _types(types, PROBLEM_TYPES),
                 lambda text, rec, opts: _verdict(text, rec, opts, **kw).score)


@register("temporal_iou")
def temporal_iou_reward(distance_penalty: bool = False, strict: bool = True) -> RewardFn:
    """Temporal IoU (optionally distance-penalised) for temporal_grounding samples."""
    return _make("temporal_iou", ("temporal_grounding",),
                 lambda text, rec, opts: _verdict(text, rec, opts, strict=strict,
                                                  distance_penalty=distance_penalty).score)


@register("box_iou")
def box_iou_reward(strict: bool = True) -> RewardFn:
    """Box IoU for spatial_grounding samples."""
    return _make("box_iou", ("spatial_grounding",),
                 lambda text, rec, opts: _verdict(text, rec, opts, strict=strict).score)


@register("tube_iou")
def tube_iou_reward(tiou_weight: float = 0.0, fps: float | None = None, strict: bool = True) -> RewardFn:
    """(1 − tiou_weight) · vIoU + tiou_weight · tIoU for spatio_temporal_grounding samples; a tIoU
    share gives a denser signal while boxes are still poor (0 = exactly the evaluation metric)."""
    if not 0.0 <= tiou_weight <= 1.0:
        raise ValueError(f"tiou_weight must be in [0, 1], got {tiou_weight}")
    kw = {"strict": strict, **({"fps": fps} if fps else {})}

    def score(text: str, rec: dict, opts: dict) -> float:
        details = _verdict(text, rec, opts, **kw).details
        return (1 - tiou_weight) * details["viou"] + tiou_weight * details["tiou"]
    return _make("tube_iou", ("spatio_temporal_grounding",), score)


@register("mra")
def mra_reward(strict: bool = True) -> RewardFn:
    """Mean relative accuracy (VSI-Bench; verifiers.mean_relative_accuracy) for regression samples: a
    step-wise alternative to the accuracy reward's 1 − relative error. Not in the default spec."""
    return _make("mra", ("regression",),
                 lambda text, rec, opts: _verdict(text, rec, opts, strict=strict).details["mra"])


@register("rouge_official")
def rouge_official_reward(strict: bool = True) -> RewardFn:
    """The official evaluator's stemmed ROUGE mean (text.rouge_official) for free_form samples, instead
    of the accuracy reward's ROUGE. Not in the default spec."""
    return _make("rouge_official", ("free_form",),
                 lambda text, rec, opts: _verdict(text, rec, opts, strict=strict).details["rouge_official"])


@register("length")
def length_reward(min_words: int = 16, max_words: int = 256, require_correct: bool = True,
                  correct_threshold: float = 0.5, types: list[str] | None = None) -> RewardFn:
    """The reasoning-length term (verify_length); with require_correct it is paid only when the
    accuracy score reaches correct_threshold (so long wrong answers earn nothing), else 0."""
    def score(text: str, rec: dict, opts: dict) -> float:
        if require_correct and _verdict(text, rec, opts).score < correct_threshold:
            return 0.0
        return verify_length(text, min_words, max_words).score
    return _make("length", _types(types, PROBLEM_TYPES), score)


TASK_REWARDS = ("accuracy", "temporal_iou", "box_iou", "tube_iou", "mra", "rouge_official")


def build_rewards(spec: list[dict[str, Any]]) -> tuple[list[RewardFn], list[float]]:
    """TRL's (reward_funcs, reward_weights) from params `rewards`: [{name, weight, kwargs}, ...].

    Unknown names or keys, and two task rewards covering one problem type, raise ValueError.
    A name used twice gets a numeric suffix (format_2) so TRL logs the components apart.
    """
    funcs, weights, covered, seen = [], [], {}, {}
    for i, entry in enumerate(spec):
        extra = set(entry) - {"name", "weight", "kwargs"}
        if "name" not in entry or extra:
            raise ValueError(f"rewards[{i}]: expected keys name, weight, kwargs; got {sorted(entry)}")
        name = entry["name"]
        if name not in REGISTRY:
            raise ValueError(f"rewards[{i}]: unknown reward {name!r}; known: {sorted(REGISTRY)}")
        try:
            func = REGISTRY[name](**(entry.get("kwargs") or {}))
        except TypeError as exc:
            raise ValueError(f"rewards[{i}] ({name}): bad kwargs: {exc}") from None
        if name in TASK_REWARDS:
            for ptype in func.problem_types:
                if ptype in covered:
                    raise ValueError(f"rewards[{i}] ({name}): {ptype} is already scored by {covered[ptype]}")
                covered[ptype] = name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            func.__name__ = func.__qualname__ = f"{name}_{seen[name]}"
        funcs.append(func)
        weights.append(float(entry.get("weight", 1.0)))
    log.info("rewards: %s", ", ".join(f"{f.__name__}×{w:g}" for f, w in zip(funcs, weights)))
    return funcs, weights
