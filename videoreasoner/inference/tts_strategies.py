"""Test-time scaling strategies: small functions over an inference engine (videoreasoner/inference/engines.py).

Every strategy takes a batch of records and returns one `Answer` per record: the chosen completion
text (a raw model output, what a predictions file holds) and its cost in generated tokens.
- greedy: one greedy completion.
- self_consistency: n samples, majority vote over *parsed* answers (answer_format.parse_answer).
  Spans, boxes and tubes are clustered by IoU (the verifiers' temporal_iou / box_iou / tube_viou on
  the frames the model saw, a tube's frames being those in its half-open span, videoreasoner/answers/spans.py)
  at `iou_threshold`; letters and numbers by equality, text after lower-casing.
  The answer returned is the medoid of the winning cluster. Ties go to the cluster holding the earliest
  sample; unparseable samples never vote (all unparseable: the first sample is returned).
- confidence_vote: the same vote, each sample weighted by exp(mean token log-probability) in (0, 1].
- best_of_n: n samples, the one a `Scorer` rates highest. Default scorer (`likelihood`): the mean
  log-probability per token of the parsed answer, written canonically as `<answer>…</answer>`, given the
  prompt (a teacher-forced forward); any reward model fits the same interface (`RewardScorer`).
- sparse_to_dense: n samples at `start_frames`; while they disagree (winning cluster < `agreement` of
  the n), double the frames, up to `max_frames`; the vote at the last level answers.
`apply_policy` / `answer_with_policy` run the policy written by the tts stage (reports/tts/policy.json).
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from videoreasoner.answers.format import extract_answer, format_answer, parse_answer
from videoreasoner.inference.engines import GREEDY, Decoding, Engine, FrameSource, Generation
from videoreasoner.answers.verifiers import box_iou, temporal_iou, tube_viou
from videoreasoner.video.config import VideoConfig

STRATEGIES = ("greedy", "self_consistency", "confidence_vote", "best_of_n", "sparse_to_dense")
DEFAULT_SAMPLING = Decoding(do_sample=True, temperature=0.8, top_p=0.95)


@dataclass(frozen=True)
class Answer:
    """A strategy's answer for one record. tokens: generated tokens spent on it (all samples, all frame
    levels); frames: frame budget of the final answer (None: params `video`); agreement: share of the
    samples in the winning cluster (1.0 for greedy)."""

    text: str
    parsed: Any = None
    tokens: int = 0
    generations: int = 1
    frames: int | None = None
    agreement: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)


def parse(record: dict, text: str) -> Any:
    """The parsed answer of a completion (strict extraction, as scored), or None."""
    return parse_answer(record["problem_type"], extract_answer(text, strict=True), record.get("options"))


def similarity(problem_type: str, a: Any, b: Any, frame_times: Sequence[float] | None = None) -> float:
    """How alike two parsed answers are, in [0, 1]: IoU for spans, boxes and tubes (vIoU over
    `frame_times`, seconds; span IoU without them), else 1.0 when equal and 0.0 otherwise."""
    if problem_type == "temporal_grounding":
        return temporal_iou(a, b)
    if problem_type == "spatial_grounding":
        return box_iou(a, b)
    if problem_type == "spatio_temporal_grounding":
        return tube_viou(a, b, frame_times) if frame_times else temporal_iou(a["span"], b["span"])
    if problem_type in ("numerical", "regression"):
        return float(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9))
    if problem_type in ("free_form", "ocr"):
        return float(" ".join(str(a).lower().split()) == " ".join(str(b).lower().split()))
    return float(a == b)


def vote(record: dict, gens: Sequence[Generation], weights: Sequence[float] | None = None,
         iou_threshold: float = 0.5, frame_times: Sequence[float] | None = None) -> tuple[int, float]:
    """(index of the chosen generation, share of samples in the winning cluster). Clustering: samples in
    order of decreasing weight join the first cluster whose leader is >= iou_threshold alike."""
    ptype = record["problem_type"]
    weights = list(weights) if weights is not None else [1.0] * len(gens)
    parsed = [parse(record, g.text) for g in gens]
    order = sorted((i for i, p in enumerate(parsed) if p is not None), key=lambda i: -weights[i])
    if not order:
        return 0, 0.0
    sim = lambda i, j: similarity(ptype, parsed[i], parsed[j], frame_times)  # noqa: E731
    clusters: list[list[int]] = []
    for i in order:
        home = next((c for c in clusters if sim(c[0], i) >= iou_threshold), None)
        if home is None:
            clusters.append([i])
        else:
            home.append(i)
    best = max(clusters, key=lambda c: (sum(weights[i] for i in c), -min(c)))
    medoid = max(best, key=lambda i: (sum(weights[j] * sim(i, j) for j in best), weights[i], -i))
    return medoid, len(best) / len(gens)


def confidence(gen: Generation) -> float:
    """A sample's vote weight: exp(mean token log-probability), the geometric-mean token probability."""
    return math.exp(gen.mean_logprob) if gen.token_logprobs else 0.0


def _answer(gens: Sequence[Generation], index: int, agreement: float, frames: int | None, record: dict,
            spent: int | None = None) -> Answer:
    text = gens[index].text
    return Answer(text, parse(record, text), spent if spent is not None else sum(g.n_tokens for g in gens),
                  len(gens), frames, agreement)


def frame_times(engine: Engine, record: dict, frames: int | None) -> list[float]:
    return list(engine.frames.get(record, frames).timestamps)


# ---- scorers (best-of-n) ----------------------------------------------------------------------------

class Scorer(Protocol):
    """Rates candidates: scores[i][k] for record i's candidate k (higher is better)."""

    def __call__(self, engine: Engine, records: Sequence[dict], candidates: Sequence[Sequence[Generation]],
                 frames: int | None) -> list[list[float]]: ...


def canonical_answer(record: dict, parsed: Any) -> str:
    """`<answer>…</answer>` with the parsed answer written as answer_format writes ground truth."""
    ptype = record["problem_type"]
    value = {"box": parsed} if ptype == "spatial_grounding" else parsed
    value = str(value) if ptype in ("numerical", "regression") else value
    return f"<answer>{format_answer(ptype, value)}</answer>"


class AnswerLikelihood:
    """Default verifier: mean log-probability (nats per token) of the canonical answer given the prompt;
    -inf for an unparseable candidate. Cached per (record, frames, answer) across calls."""

    def __init__(self):
        self._cache: dict[tuple, float] = {}

    def __call__(self, engine, records, candidates, frames):
        keys = [[(r.get("id") or r["question"], frames, self._text(r, g)) for g in gens]
                for r, gens in zip(records, candidates)]
        todo = {k: r for r, ks in zip(records, keys) for k in ks if k[2] is not None and k not in self._cache}
        if todo:
            items = list(todo.items())
            scored = engine.loglik([r for _, r in items], [k[2] for k, _ in items], frames=frames)
            self._cache.update({k: g.mean_logprob for (k, _), g in zip(items, scored)})
        return [[self._cache[k] if k[2] is not None else -math.inf for k in ks] for ks in keys]

    @staticmethod
    def _text(record: dict, gen: Generation) -> str | None:
        parsed = parse(record, gen.text)
        return None if parsed is None else canonical_answer(record, parsed)


class RewardScorer:
    """Any reward model as a scorer: fn(record, completion_text) -> float (e.g. a learned verifier)."""

    def __init__(self, fn: Callable[[dict, str], float]):
        self.fn = fn

    def __call__(self, engine, records, candidates, frames):
        return [[float(self.fn(r, g.text)) for g in gens] for r, gens in zip(records, candidates)]


SCORERS: dict[str, Callable[[], Scorer]] = {"likelihood": AnswerLikelihood}


def resolve_scorer(spec: str | Scorer | None) -> Scorer:
    """A scorer from a registry name ('likelihood'), 'module:factory' (a zero-argument callable that
    returns a Scorer), or a Scorer object (returned as is)."""
    if spec is None:
        return AnswerLikelihood()
    if not isinstance(spec, str):
        return spec
    if spec in SCORERS:
        return SCORERS[spec]()
    if ":" in spec:
        module, name = spec.split(":", 1)
        return getattr(importlib.import_module(module), name)()
    raise ValueError(f"unknown scorer {spec!r} (known: {sorted(SCORERS)} or 'module:factory')")


# ---- strategies -----------------------------------------------------------------------------------

def greedy(engine: Engine, records: Sequence[dict], *, frames: int | None = None,
           decoding: Decoding = GREEDY) -> list[Answer]:
    gens = engine.generate(records, n=1, decoding=decoding, frames=frames, desc="greedy")
    return [_answer(g, 0, 1.0, frames, r) for r, g in zip(records, gens)]


def self_consistency(engine: Engine, records: Sequence[dict], *, n: int, frames: int | None = None,
                     decoding: Decoding = DEFAULT_SAMPLING, iou_threshold: float = 0.5,
                     weighted: bool = False) -> list[Answer]:
    samples = engine.generate(records, n=n, decoding=decoding, frames=frames, desc=f"sample x{n}")
    return [select_vote(engine, r, g, frames, iou_threshold, weighted) for r, g in zip(records, samples)]


def select_vote(engine: Engine, record: dict, gens: Sequence[Generation], frames: int | None,
                iou_threshold: float = 0.5, weighted: bool = False) -> Answer:
    """The (confidence-weighted) majority answer among given samples."""
    weights = [confidence(g) for g in gens] if weighted else None
    times = frame_times(engine, record, frames) if record["problem_type"] == "spatio_temporal_grounding" else None
    index, agreement = vote(record, gens, weights, iou_threshold, times)
    return _answer(gens, index, agreement, frames, record)


def confidence_vote(engine: Engine, records: Sequence[dict], *, n: int, frames: int | None = None,
                    decoding: Decoding = DEFAULT_SAMPLING, iou_threshold: float = 0.5) -> list[Answer]:
    return self_consistency(engine, records, n=n, frames=frames, decoding=decoding,
                            iou_threshold=iou_threshold, weighted=True)


def best_of_n(engine: Engine, records: Sequence[dict], *, n: int, frames: int | None = None,
              decoding: Decoding = DEFAULT_SAMPLING, scorer: str | Scorer | None = None) -> list[Answer]:
    samples = engine.generate(records, n=n, decoding=decoding, frames=frames, desc=f"sample x{n}")
    return select_best(engine, records, samples, frames, resolve_scorer(scorer))


def select_best(engine: Engine, records: Sequence[dict], samples: Sequence[Sequence[Generation]],
                frames: int | None, scorer: Scorer) -> list[Answer]:
    """The highest-scoring sample per record (ties: the earliest)."""
    scores = scorer(engine, records, samples, frames)
    out = []
    for record, gens, s in zip(records, samples, scores):
        index = max(range(len(gens)), key=lambda k: (s[k], -k))
        out.append(_answer(gens, index, 1.0, frames, record))
    return out


Sampler = Callable[[Sequence[dict], int], list[list[Generation]]]


def sparse_to_dense(engine: Engine, records: Sequence[dict], *, n: int, start_frames: int, max_frames: int,
                    decoding: Decoding = DEFAULT_SAMPLING, iou_threshold: float = 0.5, agreement: float = 1.0,
                    sampler: Sampler | None = None) -> list[Answer]:
    """Frames start_frames, 2×, 4×, … up to max_frames, stopping for each record as soon as its n samples
    agree (winning-cluster share >= agreement). `sampler(records, frames)` replaces the engine's sampling
    (the tts stage replays a pool of samples); cost sums the tokens of every level visited."""
    sample = sampler or (lambda recs, f: engine.generate(recs, n=n, decoding=decoding, frames=f,
                                                         desc=f"sample x{n} @{f}f"))
    levels = [min(start_frames, max_frames)]
    while levels[-1] * 2 <= max_frames:
        levels.append(levels[-1] * 2)
    spent, drawn = [0] * len(records), [0] * len(records)
    result: list[Answer | None] = [None] * len(records)
    todo = list(range(len(records)))
    for level in levels:
        samples = sample([records[i] for i in todo], level)
        still = []
        for i, gens in zip(todo, samples):
            spent[i] += sum(g.n_tokens for g in gens)
            drawn[i] += len(gens)
            answer = select_vote(engine, records[i], gens, level, iou_threshold)
            result[i] = Answer(answer.text, answer.parsed, spent[i], drawn[i], level, answer.agreement,
                               {"levels": levels.index(level) + 1})
            if answer.agreement < agreement and level != levels[-1]:
                still.append(i)
        todo = still
        if not todo:
            break
    return [a for a in result if a is not None]


# ---- policies ---------------------------------------------------------------------------------------

def with_sampler(engine: Engine, sampler: str | None) -> Engine:
    """The engine whose frames come from `sampler` (params `video` otherwise unchanged; its own frame
    cache); the engine itself when it already samples so or `sampler` is None (older policies)."""
    source = engine.frames
    if sampler is None or source.video.sampler == sampler:
        return engine
    video = VideoConfig.from_params({**source.video.__dict__, "sampler": sampler})
    return engine.with_frames(FrameSource(video, getattr(source, "video_root", "."), source.transform))


def apply_policy(engine: Engine, records: Sequence[dict], policy: dict[str, Any]) -> list[Answer]:
    """Answer `records` as reports/tts/policy.json says: {"strategy", "n", "frames", "decoding",
    "iou_threshold", "scorer", "start_frames", "agreement", "sampler"} (missing keys take the defaults
    above; the frame sampler, when named, replaces the engine's)."""
    engine = with_sampler(engine, policy.get("sampler"))
    name = policy.get("strategy", "greedy")
    frames = policy.get("frames")
    decoding = Decoding.from_params(policy.get("decoding") or {}) if policy.get("decoding") else None
    thr = float(policy.get("iou_threshold", 0.5))
    if name == "greedy":
        return greedy(engine, records, frames=frames,
                      decoding=Decoding.from_params({**(policy.get("decoding") or {}), "do_sample": False}))
    decoding = decoding or DEFAULT_SAMPLING
    n = int(policy.get("n", 4))
    if name == "self_consistency":
        return self_consistency(engine, records, n=n, frames=frames, decoding=decoding, iou_threshold=thr)
    if name == "confidence_vote":
        return confidence_vote(engine, records, n=n, frames=frames, decoding=decoding, iou_threshold=thr)
    if name == "best_of_n":
        return best_of_n(engine, records, n=n, frames=frames, decoding=decoding, scorer=policy.get("scorer"))
    if name == "sparse_to_dense":
        cap = frames or engine.frames.video.max_frames
        return sparse_to_dense(engine, records, n=n, start_frames=int(policy.get("start_frames", 2)),
                               max_frames=cap, decoding=decoding, iou_threshold=thr,
                               agreement=float(policy.get("agreement", 1.0)))
    raise ValueError(f"policy strategy {name!r} unknown (known: {STRATEGIES})")


def answer_with_policy(engine: Engine, record_or_question: dict | str, video_path: str | None,
                       policy: dict[str, Any], *, problem_type: str = "free_form",
                       options: list[str] | None = None) -> str:
    """One answer (the raw completion text) for a record, or for a bare question about `video_path`
    (problem_type / options then describe it). A record's own `video` is replaced by video_path if given."""
    if isinstance(record_or_question, str):
        record = {"id": "query", "question": record_or_question, "problem_type": problem_type,
                  **({"options": options} if options else {})}
    else:
        record = dict(record_or_question)
    if video_path is not None:
        record["video"] = str(video_path)
    if "video" not in record:
        raise ValueError("answer_with_policy: no video (give video_path or a record with 'video')")
    return apply_policy(engine, [record], policy)[0].text
