"""Parse the text inside <answer>…</answer> back into a value, one parser per answer type.

Lenient where the field invites it ("(B)", "The answer is B", "2.5-7.0 s", "1,234"), strict where
leniency would reward hedging or tricks:
- an answer naming several options, numbers, spans or boxes parses to None (never credited);
- only ASCII letters and digits count. Look-alike characters (Cyrillic "В", fullwidth "Ｂ"/"３",
  Arabic-Indic digits) are NOT normalised: NFKC would map fullwidth forms to ASCII, but a model that
  writes them has not written the answer format it was taught, and Python's own `float("３")` / `\\d`
  accept such digits silently, so every pattern here spells out [0-9] and [A-Z];
- inputs longer than MAX_ANSWER_CHARS parse to None (bounded work on adversarial outputs).

Units: times are seconds (also "mm:ss" / "hh:mm:ss"); boxes are [x1, y1, x2, y2] as written (the IoU
functions reorder reversed corners; values are not clipped to [0, 1]).
"""
from __future__ import annotations

import math
import re
import unicodedata

from videoreasoner.answers.canonical import TIME_DECIMALS, format_time
from videoreasoner.core.schema import OPTION_LETTERS

MAX_ANSWER_CHARS = 8192
MAX_TUBE_BOXES = 512

# A number: optional sign, digits with optional thousands commas, optional decimals, optional exponent;
# never part of a dotted run such as a version "1.2.3" (which is no number at all).
_NUMBER_RE = re.compile(
    r"(?<![0-9.])[-+]?(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?(?![0-9]|\.[0-9])"
    r"|(?<![0-9.])[-+]?\.[0-9]+(?:[eE][-+]?[0-9]+)?(?![0-9]|\.[0-9])"
)
_DOTTED_RUN_RE = re.compile(r"[0-9]\.[0-9]+\.[0-9]")
# An unsigned time: seconds, or mm:ss / hh:mm:ss, with optional decimals.
_TIME_RE = re.compile(r"(?<![0-9.:])(?:[0-9]+:){0,2}(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?![0-9])")
# A minus sign attached to a time ("-1 to 3", "[1, -3]"), not a dash between two times ("2.5-7.0").
_NEGATIVE_TIME_RE = re.compile(r"(?:^|[\s\[(,])-[0-9.]")
_COORD = r"([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
_BOX_BODY = r"[\[(]\s*" + r"\s*,\s*".join([_COORD] * 4) + r"\s*[\])]"
_BOX_RE = re.compile(_BOX_BODY)
_TIMED_BOX_RE = re.compile(
    r"(?<![0-9.:])((?:[0-9]+:){0,2}(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+))\s*(?:s|sec|secs|seconds)?\s*[:=]\s*"
    + _BOX_BODY
)
_NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_LEAD_PHRASE_RE = re.compile(
    r"^\W*(?:the\s+)?(?:(?:correct|final|best|right)\s+)?(?:answer|option|choice)\s*(?:is\b|:|-)?\s*"
    r"(?:option\s+|choice\s+)?",
    re.IGNORECASE,
)
# CJK scripts write no space between words ("答案是C", "选B"), so their characters bound a letter.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# An option letter standing alone: Unicode-aware boundaries, so "Bа" (Cyrillic а) is not a lone "B";
# a neighbouring CJK character counts as a boundary.
_LONE_LETTER_RE = re.compile(rf"(?<!(?![{_CJK}])\w)([A-Z])(?![^\W{_CJK}])")
_SINGLE_LETTER_RE = re.compile(r"[^\w]*([A-Za-z])[^\w]*")


def _bounded(text: object) -> str | None:
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return None
    text = text.strip()
    return text or None


def _bounded_ascii_symbols(text: object) -> str | None:
    """`_bounded`, and None when the text holds a non-ASCII digit or a combining mark: letters, numbers,
    times and boxes are read from ASCII only, so "٣.5" or "A\u0301" can never be read as "0.5" or "A"."""
    s = _bounded(text)
    if s is None or any((ch.isdecimal() and not ch.isascii()) or unicodedata.combining(ch) for ch in s):
        return None
    return s


def _norm_text(text: str) -> str:
    """Lowercase, collapse whitespace, strip surrounding punctuation: for comparing option texts."""
    return " ".join(text.lower().split()).strip(" .,:;!?\"'()[]*")


def _to_float(token: str) -> float | None:
    value = float(token.replace(",", ""))
    return value if math.isfinite(value) else None


def _time_seconds(token: str) -> float | None:
    """'7.5' -> 7.5, '1:05' -> 65.0, '1:00:02' -> 3602.0; minutes/seconds fields must be < 60."""
    parts = token.split(":")
    values = [float(p) for p in parts]
    if any(v >= 60 for v in values[1:]):
        return None
    seconds = 0.0
    for value in values:
        seconds = seconds * 60 + value
    return seconds if math.isfinite(seconds) else None


# ---------------------------------------------------------------------------------------------------
# Per-type parsers. Each takes the answer text (already extracted) and returns a value or None.
# ---------------------------------------------------------------------------------------------------

def parse_choice(text: str, options: list[str] | None = None) -> str | None:
    """Option letter ("A".."Z") or None.

    Accepted: "B", "(B)", "b", "B.", "**B**", "B. blue", "The answer is (B)", "Option B", "答案是B", "选B"
    (CJK text needs no space around the letter), or the exact
    text of one option ("blue"). Rejected (None): several option letters ("A, B", "B or C", "ABCD"),
    a letter whose trailing text is another option's text ("B. green" when green is option C), a letter
    beyond the number of options, and look-alike non-ASCII letters.
    """
    s = _bounded_ascii_symbols(text)
    if s is None:
        return None
    valid = OPTION_LETTERS[: len(options)] if options else OPTION_LETTERS
    single = _SINGLE_LETTER_RE.fullmatch(s)
    if single:
        letter = single.group(1).upper()
        return letter if letter in valid else None
    body = _LEAD_PHRASE_RE.sub("", s, count=1)
    counted = body
    for option in sorted(options or [], key=len, reverse=True):
        if len(option.strip()) >= 2:  # option texts may contain capitals ("A red ball"): not letters
            counted = re.sub(re.escape(option.strip()), " ", counted, flags=re.IGNORECASE)
    letters = {m for m in _LONE_LETTER_RE.findall(counted) if m in valid}
    if len(letters) > 1:
        return None
    if len(letters) == 1:
        letter = letters.pop()
        return None if _contradicts(body, letter, options) else letter
    return _match_option_text(body, options)


def _contradicts(body: str, letter: str, options: list[str] | None) -> bool:
    """True when the text after the letter is exactly the text of a different option."""
    if not options:
        return False
    rest = _norm_text(_LONE_LETTER_RE.sub(" ", body, count=1))
    hits = {i for i, option in enumerate(options) if _norm_text(option) == rest}
    return bool(rest) and bool(hits) and OPTION_LETTERS.index(letter) not in hits


def _match_option_text(body: str, options: list[str] | None) -> str | None:
    if not options:
        return None
    key = _norm_text(body)
    hits = [i for i, option in enumerate(options) if key and _norm_text(option) == key]
    return OPTION_LETTERS[hits[0]] if len(hits) == 1 else None


def parse_number(text: str) -> float | None:
    """One finite number: "3", "3.0", "-2.5", "1,234", "3.5 m", "45%", "1e3", or a word zero..twenty.

    Several distinct numbers ("3 or 4") give None; the same number repeated is accepted. A dotted
    run ("1.2.3", a version or a date) is no number, and an answer holding one gives None.
    """
    s = _bounded_ascii_symbols(text)
    if s is None:
        return None
    word = _norm_text(s)
    if word in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[word])
    if _DOTTED_RUN_RE.search(s):
        return None
    values = {_to_float(m.group(0)) for m in _NUMBER_RE.finditer(s)}
    if len(values) != 1:
        return None
    return values.pop()


def parse_text(text: str) -> str | None:
    """Free text with whitespace collapsed; None when empty or over the bound."""
    s = _bounded(text)
    return " ".join(s.split()) if s else None


def parse_span(text: str) -> list[float] | None:
    """[start, end] seconds from exactly two times: "2.5 to 7.0", "2.5-7.0 s", "[2.5, 7]",
    "from 2.5 to 7 seconds", "0:02.5 - 0:07". Returned as written (a reversed span is reordered by
    the IoU functions, not here). Fewer or more than two times give None.
    """
    s = _bounded_ascii_symbols(text)
    return _span_from(s) if s else None


def _span_from(s: str) -> list[float] | None:
    tokens = _TIME_RE.findall(s)
    if len(tokens) != 2 or _NEGATIVE_TIME_RE.search(s):
        return None
    times = [_time_seconds(t) for t in tokens]
    return None if None in times else times


def parse_box(text: str) -> list[float] | None:
    """[x1, y1, x2, y2] from exactly one bracketed group of four numbers ("[0.1, 0.2, 0.5, 0.6]"), or
    from exactly four bare numbers when no bracket is present. Several boxes give None.
    """
    s = _bounded_ascii_symbols(text)
    if s is None:
        return None
    boxes = _BOX_RE.findall(s)
    if len(boxes) > 1:
        return None
    if len(boxes) == 1:
        coords = [_to_float(c) for c in boxes[0]]
    else:
        numbers = _NUMBER_RE.findall(s)
        if len(numbers) != 4:
            return None
        coords = [_to_float(c) for c in numbers]
    return None if None in coords else coords


def parse_tube(text: str) -> dict | None:
    """{"span": [s, e], "boxes": {"<t>": [x1, y1, x2, y2], ...}} from the tube text form
    "2.0 to 4.0; 2.0: [0.10, 0.20, 0.30, 0.40]; 3.0: [...]" (see format.format_answer).

    Box keys are canonical time strings (format_time). Without a span, the span runs from the first
    box time to one written unit (10 ** -TIME_DECIMALS s) after the last: spans are half-open
    (videoreasoner/answers/spans.py), so ending at the last box time would drop that box's frame. A
    time given twice with different boxes gives None (a hedge).
    """
    s = _bounded_ascii_symbols(text)
    if s is None:
        return None
    boxes: dict[str, list[float]] = {}
    for match in _TIMED_BOX_RE.finditer(s):
        t = _time_seconds(match.group(1))
        coords = [_to_float(c) for c in match.groups()[1:]]
        if t is None or None in coords or len(boxes) >= MAX_TUBE_BOXES:
            return None
        key = format_time(t)
        if boxes.get(key, coords) != coords:
            return None
        boxes[key] = coords
    rest = _TIMED_BOX_RE.sub(" ", s)
    span = _span_from(rest)
    if span is None and boxes and not _TIME_RE.search(rest):
        times = sorted(float(k) for k in boxes)
        span = [times[0], round(times[-1] + 10.0 ** -TIME_DECIMALS, TIME_DECIMALS)]
    if span is None:
        return None
    return {"span": span, "boxes": boxes}
