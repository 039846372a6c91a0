"""LLaMA-Factory sharegpt video JSON: a list of single-turn conversations about one video.

Each entry: `messages` ([{"role", "content"}]) or `conversations` ([{"from", "value"}]) holding one
user turn then one assistant turn (system turns are ignored; multi-turn is an error), and
`videos` (a list of exactly one path, relative to `video_root`). The user turn has one "<video>"
placeholder, removed from the question. An assistant turn with <think>/<answer> tags is split into
`reasoning` and `answer`; without tags the whole turn is the answer.
The problem type is the source entry's optional `problem_type` (default free_form; allowed:
free_form, ocr, numerical, regression, multiple_choice). For multiple_choice the options are the
trailing question lines "A. …", "B. …" (removed from the question) and the answer is a letter.
"""
from __future__ import annotations

from collections.abc import Iterator

from videoreasoner.data.importers.common import (each_entry, json_items, load_json, parse_options, probe_video,
                                                 record, split_tags, typed_answer, video_ref)
from videoreasoner.data.importers.option_prefixes import prefix_letter
from videoreasoner.core.schema import Record, RecordError

PROBLEM_TYPES = ("free_form", "ocr", "numerical", "regression", "multiple_choice")
ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "model": "assistant", "system": "system"}


def _turns(item: dict, where: str) -> tuple[str, str, str]:
    """(field name, user text, assistant text) of a single-turn conversation."""
    key = "messages" if "messages" in item else "conversations"
    turns = item.get(key)
    if not isinstance(turns, list) or not turns:
        raise RecordError(where, key, "missing or not a list of turns (need 'messages' or 'conversations')")
    kept = []
    for k, turn in enumerate(turns):
        role = ROLES.get(turn.get("role", turn.get("from"))) if isinstance(turn, dict) else None
        text = turn.get("content", turn.get("value")) if isinstance(turn, dict) else None
        if role is None:
            raise RecordError(where, f"{key}[{k}].role", f"expected one of {', '.join(ROLES)}")
        if not isinstance(text, str):
            raise RecordError(where, f"{key}[{k}].content", "missing or not a string")
        if role != "system":
            kept.append((role, text))
    if [role for role, _ in kept] != ["user", "assistant"]:
        raise RecordError(where, key, "expected one user turn followed by one assistant turn "
                                      "(multi-turn conversations are not supported)")
    return key, kept[0][1], kept[1][1]


def _split_options(question: str, where: str, field: str) -> tuple[str, list[str]]:
    """Trailing "A. …" lines of the question become the options (prefix rule: option_prefixes.py)."""
    lines = question.splitlines()
    n = len(lines)
    while n > 0 and prefix_letter(lines[n - 1], required=True) is not None:
        n -= 1
    return "\n".join(lines[:n]).strip(), parse_options(lines[n:], where, field)


def load(entry: dict) -> Iterator[Record]:
    problem_type = entry.get("problem_type", "free_form")
    if problem_type not in PROBLEM_TYPES:
        raise RecordError(entry["path"], "problem_type",
                          f"sharegpt sources support {', '.join(PROBLEM_TYPES)}, got {problem_type!r}")
    return each_entry(entry, json_items(entry, load_json(entry)),
                      lambda *item: _item(entry, problem_type, *item))


def _item(entry: dict, problem_type: str, where: str, index: int, item: dict) -> Record:
    key, user, assistant = _turns(item, where)
    videos = item.get("videos")
    if not isinstance(videos, list) or len(videos) != 1:
        raise RecordError(where, "videos", "expected a list of exactly one video path")
    if user.count("<video>") != 1:
        raise RecordError(where, f"{key}.user", "expected exactly one <video> placeholder")
    question = user.replace("<video>", "").strip()
    options = None
    if problem_type == "multiple_choice":
        question, options = _split_options(question, where, f"{key}.user")
    if not question:
        raise RecordError(where, f"{key}.user", "empty question")
    reasoning, answer = split_tags(assistant)
    if answer is None:
        answer = assistant.split("</think>")[-1].strip()
    video = video_ref(entry, videos[0], where, "videos")
    return record(entry, where, index, video, probe_video(video, where, "videos"),
                  problem_type=problem_type, question=question, options=options,
                  answer=typed_answer(problem_type, answer, options, where, f"{key}.assistant"),
                  reasoning=reasoning or None)
