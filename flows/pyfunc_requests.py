"""Requests to the registered model (flows/pyfunc_model.py) read as records, and their answers as rows.

A request names its video in one of two fields:
- `video`: a local file path (absolute, or relative to the current directory), confined to the allowed
  video roots (`allowed_roots`); symlinks are resolved before the check. A path outside the roots, a
  missing file and a directory get one generic error, so a client cannot probe which files exist.
- `video_b64`: the video file's bytes, base64-encoded (RFC 4648, standard alphabet), for a client that
  does not share the server's disk. They are written to a private temporary folder for the request and
  deleted after it (VideoReasonerModel.predict).
Plus `question` (required), `problem_type` (default free_form), `options` (multiple_choice: required) and
`id` (default request-<i>). Every problem is a RequestError naming the request's index and the field.
"""
from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Logged with the model: MLflow lets load-time config override only keys the logged config has.
MODEL_CONFIG: dict[str, Any] = {"video_roots": None}  # None: the current directory at load time
VIDEO_FIELDS = ("video", "video_b64")


class RequestError(ValueError):
    """A request the model cannot answer as given: the message names the request and the field."""


def allowed_roots(model_config: dict | None = None) -> list[Path]:
    """The directories a request's video may lie in, resolved (symlinks followed) at load time."""
    config = dict(model_config or {})
    unknown = sorted(set(config) - set(MODEL_CONFIG))
    if unknown:
        raise KeyError(f"model_config: unknown key(s) {unknown} (known: {', '.join(MODEL_CONFIG)})")
    roots = config.get("video_roots")
    if roots is None:
        roots = [os.getcwd()]
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    return [Path(os.path.realpath(root)) for root in roots]


def confined_video(video: str, roots: Sequence[Path]) -> str | None:
    """The resolved path of `video` if it is a regular file inside one of `roots`, else None (whatever
    the reason, so that the caller's error cannot tell a missing file from a forbidden one)."""
    try:
        real = os.path.realpath(video)
        inside = any(os.path.commonpath([real, root]) == str(root) for root in roots)
    except (ValueError, OSError):  # NUL byte, mixed drives
        return None
    return real if inside and os.path.isfile(real) else None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _rows(model_input: Any) -> list[dict]:
    """A pandas DataFrame, one dict, a dict of columns, or a list of dicts, as a list of dicts."""
    if hasattr(model_input, "to_dict"):
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        columnar = model_input and all(isinstance(v, (list, tuple)) for k, v in model_input.items() if k != "options")
        one = any(isinstance(model_input.get(f), str) for f in VIDEO_FIELDS)
        if columnar and not one:
            column = next((model_input[f] for f in VIDEO_FIELDS if f in model_input), None)
            if column is None:
                raise RequestError("request: no field 'video' or 'video_b64'")
            return [{k: v[i] for k, v in model_input.items()} for i in range(len(column))]
        return [model_input]
    return list(model_input)


def _uploaded(i: int, text: Any, upload_dir: Path | None) -> str:
    """The path of request i's base64 video, written under upload_dir."""
    if upload_dir is None:
        raise RequestError(f"request {i}: field 'video_b64': uploads are not accepted here")
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"request {i}: field 'video_b64': not valid base64 (standard alphabet, padded)") from None
    if not data:
        raise RequestError(f"request {i}: field 'video_b64': empty")
    path = Path(upload_dir) / f"request-{i}.video"
    path.write_bytes(data)
    return str(path)


def to_records(model_input: Any, roots: Sequence[Path] | None = None,
               upload_dir: str | Path | None = None) -> list[dict]:
    """Requests as records of the schema in videoreasoner/core/schema.py (id, video, question,
    problem_type, options?), each `video` a readable file: a path under `roots` (default:
    `allowed_roots()`), resolved, or the decoded `video_b64` written under `upload_dir` (None: refused)."""
    roots = allowed_roots() if roots is None else roots
    records = []
    for i, row in enumerate(_rows(model_input)):
        given = [f for f in VIDEO_FIELDS if not _missing(row.get(f)) and str(row.get(f)).strip()]
        if len(given) != 1:
            raise RequestError(f"request {i}: give exactly one of the fields 'video' (a path) and 'video_b64' "
                               f"(the file's bytes, base64), got {given or 'neither'}")
        if _missing(row.get("question")) or not str(row.get("question")).strip():
            raise RequestError(f"request {i}: field 'question' is required")
        record = {"id": str(row.get("id") or f"request-{i}"), "question": str(row["question"]),
                  "problem_type": "free_form" if _missing(row.get("problem_type")) else str(row["problem_type"])}
        options = row.get("options")
        if not _missing(options) and len(options):
            record["options"] = [str(o) for o in options]
        if record["problem_type"] == "multiple_choice" and "options" not in record:
            raise RequestError(f"request {i}: a multiple_choice question needs 'options'")
        if given == ["video_b64"]:
            video = _uploaded(i, row["video_b64"], None if upload_dir is None else Path(upload_dir))
        else:
            video = confined_video(str(row["video"]), roots)
            if video is None:
                raise RequestError(f"request {i}: field 'video': cannot open {str(row['video'])!r} "
                                   f"(not a file under the allowed video roots)")
        records.append(record | {"video": video})
    return records


def answer_row(record: dict, result: str | dict, seconds: float, parse) -> dict[str, Any]:
    """The answer to one request: {"id", "problem_type", "answer" (the parsed answer, as scored; None
    when unreadable), "text" (the raw completion), "frame_times" (seconds of the frames the answer saw;
    None when the predictor does not report them), "latency_s" (wall seconds of this request)}.

    `result`: a predictor's output, the raw text or {"text", "frame_times"}; `parse(record, text)`: the
    answer parser (videoreasoner/inference/tts_strategies.py `parse`)."""
    text, times = (result, None) if isinstance(result, str) else (result["text"], result.get("frame_times"))
    return {"id": record["id"], "problem_type": record["problem_type"], "answer": parse(record, text),
            "text": text, "frame_times": None if times is None else [round(float(t), 4) for t in times],
            "latency_s": round(seconds, 4)}
