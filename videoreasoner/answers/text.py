"""Text similarity scores in [0, 1]: word error rate (OCR) and ROUGE (free-form answers).

Conventions:
- Both compare lowercased text with whitespace collapsed; an exact match after that scores 1.
- OCR: 1 − WER (jiwer), clipped to [0, 1]. An empty reference scores 1 only against an empty answer.
- Free form: the mean F1 of ROUGE-1, ROUGE-2 and ROUGE-L (rouge_score, no stemming), averaged over
  the orders the reference can have: a one-word reference has no bigram, and counting its ROUGE-2 as 0
  (as Video-R1 does) would cap a perfect one-word answer at 0.67. Words are Unicode `\\w+` runs, not
  rouge_score's default ASCII-only tokens, which would score every non-Latin answer 0; look-alike
  letters (Cyrillic "е" for "e") still make different words.
- Official free-form score (`rouge_official`, reported beside the score above, never replacing it):
  computed as Video-R1's evaluation computes it, rouge_score's RougeScorer(["rouge1", "rouge2",
  "rougeL"], use_stemmer=True) with its default tokenizer (lowercase, ASCII letters and digits only, so
  non-Latin text scores 0), scorer.score(reference, prediction), and the plain mean of the three F
  measures: ROUGE-2 counts even for a one-word reference, and the texts are passed unchanged.
"""
from __future__ import annotations

import functools
import re

import jiwer
from rouge_score import rouge_scorer

_WORD_RE = re.compile(r"\w+")


def normalise_text(text: str) -> str:
    """Lowercase with whitespace collapsed (the comparison form for OCR and free-form answers)."""
    return " ".join(str(text).lower().split())


class _UnicodeWords:
    """A rouge_score tokenizer: lowercase Unicode word runs."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD_RE.findall(text.lower())


@functools.lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_UnicodeWords())


@functools.lru_cache(maxsize=1)
def _official_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def wer_score(prediction: str, reference: str) -> float:
    """1 − word error rate of `prediction` against `reference`, clipped to [0, 1]."""
    hyp, ref = normalise_text(prediction), normalise_text(reference)
    if not ref:
        return 1.0 if not hyp else 0.0
    if hyp == ref:
        return 1.0
    if not hyp:
        return 0.0
    return min(1.0, max(0.0, 1.0 - jiwer.wer(ref, hyp)))


def rouge_score(prediction: str, reference: str) -> tuple[float, dict[str, float]]:
    """(mean ROUGE F1, {"rouge1": f, "rouge2": f, "rougeL": f}) of `prediction` against `reference`."""
    hyp, ref = normalise_text(prediction), normalise_text(reference)
    n_ref_words = len(_WORD_RE.findall(ref))
    if hyp == ref:
        return 1.0, {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    scores = {k: float(v.fmeasure) for k, v in _scorer().score(ref, hyp).items()}
    orders = ["rouge1", "rougeL"] + (["rouge2"] if n_ref_words >= 2 else [])
    return sum(scores[k] for k in orders) / len(orders), scores


def rouge_official(prediction: str, reference: str) -> float:
    """The official free-form score: mean of stemmed ROUGE-1/2/L F measures (conventions above)."""
    scores = _official_scorer().score(str(reference), str(prediction))
    return float(sum(scores[k].fmeasure for k in ("rouge1", "rouge2", "rougeL")) / 3)
