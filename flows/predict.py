"""`vr predict VIDEO "QUESTION" [--options A B …] [--type TYPE] [--model URI] [--json]`: ask a model about
one video and print the parsed answer, the raw text, the frame times used and the latency.

--model: a registry URI (`models:/video-reasoner@champion`, the default, with the name from
mlflow/registry.yaml; or `models:/<name>/<version>`), a pyfunc folder, or a save_pretrained checkpoint
folder such as models/rl (flows/model_source.py). A registered model answers through its pyfunc
(flows/pyfunc_model.py), with its TTS policy and the video settings it was registered with; a bare
checkpoint answers greedily with params.yaml's `video`, `compute` and `eval.decoding`. The fields are
the pyfunc's (flows/pyfunc_requests.py `answer_row`); --json prints that row as one JSON object.
Latency: wall seconds of answering the request, model loading excluded. --type defaults to
multiple_choice with --options, free_form without. The video's own folder is the only one the model
may read. Exit codes: 0 answered, 2 a bad request or model (the message names it), 1 the model failed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401
from flows.cli_logging import cli_logging
from flows.model_source import LocalModel, resolve
from flows.pyfunc_requests import RequestError, answer_row, to_records
from videoreasoner.core.schema import PROBLEM_TYPES

log = logging.getLogger("flows.predict")


def default_model_uri(rules_file: str | Path = "mlflow/registry.yaml") -> str:
    from flows.gates import load_rules

    rules = load_rules(rules_file)
    return f"models:/{rules.model_name}@{rules.champion}"


def checkpoint_answer(local: LocalModel, request: dict[str, Any], roots: list[Path]) -> dict[str, Any]:
    """A bare checkpoint's answer row: greedy decoding (params eval.decoding) with params video/compute/eval."""
    from flows.pyfunc_model import default_predictor_factory, parse_answer
    from videoreasoner.core.params import load_params

    params = load_params()
    settings = {k: params.get(k) or {} for k in ("video", "compute", "eval")}
    policy = {"strategy": "greedy", "decoding": dict((params.get("eval") or {}).get("decoding") or {})}
    predictor = default_predictor_factory(str(local.model_dir), policy, settings)
    record = to_records(request, roots)[0]
    t0 = time.perf_counter()
    result = predictor(record, record["video"])
    return answer_row(record, result, time.perf_counter() - t0, parse_answer)


def pyfunc_answer(local: LocalModel, request: dict[str, Any], roots: list[Path]) -> dict[str, Any]:
    """A registered model's answer row, through its pyfunc."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(local.pyfunc_dir), model_config={"video_roots": [str(r) for r in roots]})
    return model.predict(request)[0]


def one_line(text: str) -> str:
    """The model's raw text with its line breaks and other control characters escaped (\\n, \\t), so
    that each field of `show` stays on its own line whatever the model wrote."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def show(row: dict[str, Any]) -> str:
    times = "–" if row["frame_times"] is None else ", ".join(f"{t:g}" for t in row["frame_times"]) + " s"
    answer = "(unreadable)" if row["answer"] is None else json.dumps(row["answer"])
    return (f"answer:      {answer}\ntext:        {one_line(row['text'])}\nframe times: {times}\n"
            f"latency:     {row['latency_s']:.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vr predict", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", help="the video file")
    parser.add_argument("question")
    parser.add_argument("--options", nargs="+", default=None, help="the options of a multiple-choice question")
    parser.add_argument("--type", choices=PROBLEM_TYPES, default=None, dest="problem_type",
                        help="problem type (default: multiple_choice with --options, else free_form)")
    parser.add_argument("--model", default=None, help="models:/NAME@ALIAS, models:/NAME/VERSION or a folder "
                                                      "(default: the registry's champion)")
    parser.add_argument("--json", action="store_true", help="print the answer row as JSON")
    args = parser.parse_args(argv)
    cli_logging()
    video = Path(args.video)
    if not video.is_file():
        print(f"vr predict: {args.video}: no such file", file=sys.stderr)
        return 2
    request = {"video": str(video), "question": args.question,
               "problem_type": args.problem_type or ("multiple_choice" if args.options else "free_form"),
               **({"options": args.options} if args.options else {})}
    roots = [Path(os.path.realpath(video)).parent]
    try:
        uri = args.model or default_model_uri()
        with tempfile.TemporaryDirectory(prefix="vr-predict-") as download:  # a registered model's copy
            local = resolve(uri, download_to=download)
            row = (pyfunc_answer if local.pyfunc_dir else checkpoint_answer)(local, request, roots)
    except (RequestError, FileNotFoundError) as exc:
        print(f"vr predict: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # MlflowException: its message names the request, the field and the problem
        message = getattr(exc, "message", None) or str(exc)
        print(f"vr predict: {type(exc).__name__}: {message}", file=sys.stderr)
        code = getattr(exc, "get_http_status_code", lambda: 500)()
        return 2 if code == 400 else 1
    print(json.dumps(row) if args.json else show(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
