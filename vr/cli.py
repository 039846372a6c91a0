"""`vr`: the commands users run by hand. Each subcommand calls a stage's own entry point, so the
command line and `dvc repro` run exactly the same code with the same params.yaml.

  vr generate | ingest | validate | bootstrap | sft | rl | tts | evaluate
                                       run one stage directly (no DVC bookkeeping)
  vr evaluate --model URI [--out DIR]  score a registered model (models:/NAME@ALIAS, models:/NAME/VERSION)
                                       or a model folder on params eval.sources, nothing retrained
  vr predict VIDEO "QUESTION" [--options A B ...] [--type TYPE] [--model URI] [--json]
                                       ask a model about one video: parsed answer, raw text, frame
                                       times, latency
  vr pretrain                          rebuild the shipped tiny base (about 50 min on 2 cores; not part
                                       of the pipeline, whose default loads the committed base)
  vr repro [STAGE ...]                 `dvc repro` the pipeline (or up to STAGE), no flow, no registry
  vr pipeline [--force] [--no-register]
                                       the Prefect flow: every stage in DAG order, then MLflow
                                       registration and gated promotion
  vr registry list|register|promote V|rollback [--to V]
  vr servers mlflow [--auth] | prefect-ui | serve [--deployment nightly]
  vr servers up [--auth] | down | restart [mlflow|prefect] | status | users
                                       team mode: PostgreSQL-backed MLflow and Prefect servers
  vr score --split S --predictions P --out DIR [--protocol NAME ...]
                                       score any model's predictions with our metrics (strict), and
                                       as each named official evaluator does

Every command returns its stage's exit code (0 only on success), so shells, CI and `vr` inside scripts
see a failed data gate or a failed flow as a failure.
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Callable

from videoreasoner.core import telemetry  # noqa: F401

STAGES = ("generate", "ingest", "validate", "pretrain", "bootstrap", "sft", "rl", "tts", "evaluate")
FORWARDED = ("pipeline", "registry", "servers", "score", "predict")  # commands whose options pass through to their main


def stage_main(name: str) -> Callable[[], object]:
    """main() of stages/<name>.py. Imported only when that command runs (a training stage's imports cost
    seconds; `vr --help` none), and spelt out so that a static walk of the imports sees each one."""
    if name == "generate":
        from stages.generate import main
    elif name == "ingest":
        from stages.ingest import main
    elif name == "validate":
        from stages.validate import main
    elif name == "pretrain":
        from stages.pretrain import main
    elif name == "bootstrap":
        from stages.bootstrap import main
    elif name == "sft":
        from stages.sft import main
    elif name == "rl":
        from stages.rl import main
    elif name == "tts":
        from stages.tts import main
    elif name == "evaluate":
        from stages.evaluate import main
    else:
        raise KeyError(f"vr: no stage named {name!r} (stages: {', '.join(STAGES)})")
    return main


def forwarded_main(name: str) -> Callable[[list[str]], object]:
    """main(argv) of a command that parses its own options, imported only when that command runs."""
    if name == "pipeline":
        from flows.command import main
    elif name == "registry":
        from flows.registry_cli import main
    elif name == "servers":
        from flows.servers import main
    elif name == "score":
        from videoreasoner.answers.score import main
    elif name == "predict":
        from flows.predict import main
    elif name == "evaluate-model":  # `vr evaluate --model URI`: not a subcommand of its own
        from flows.evaluate_model import main
    else:
        raise KeyError(f"vr: no command named {name!r} (commands: {', '.join(FORWARDED)})")
    return main


def _repro(args: list[str]) -> int:
    """`dvc repro` with `args` as given (stages and options such as --force): DVC's exit code, or 128 + N
    when a signal N ended it (the shell's convention)."""
    code = subprocess.call([sys.executable, "-m", "dvc", "repro", *args])
    return code if code >= 0 else 128 - code


def exit_code(command: str, code: object) -> int:
    """`code`, the value a command's main() returned, checked to be an int exit code: a main that
    returns None (it forgot to pass its failure on) would otherwise read as success, and so would 256
    (the OS keeps the low 8 bits), so a code outside 0..255 becomes 1."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"vr {command}: its main() returned {code!r}, not an int exit code")
    return code if 0 <= code <= 255 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="vr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        sub.add_parser(name, help=f"run the {name} stage with params.yaml" + (
            "; with --model URI [--out DIR], score that model (see above)" if name == "evaluate" else ""))
    for name, text in (("repro", "dvc repro the pipeline, or the given stages (dvc repro's options pass through)"),
                       ("pipeline", "the Prefect flow over every stage, then registration"),
                       ("registry", "list, register, promote or roll back model versions"),
                       ("servers", "start the MLflow server, the Prefect UI or the scheduled deployment"),
                       ("score", "score a predictions JSONL against a validated split"),
                       ("predict", "ask a model about one video: answer, raw text, frame times, latency")):
        sub.add_parser(name, help=text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpcore"):  # Prefect's API client logs every request at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)

    if args.command == "evaluate" and rest:  # --model URI: the stage's code on a registered model
        return exit_code("evaluate", forwarded_main("evaluate-model")(rest))
    if args.command in STAGES:
        if rest:  # a stage reads params.yaml only: an option here would be silently ignored
            parser.error(f"vr {args.command} takes no arguments (its settings live in params.yaml): {' '.join(rest)}")
        return exit_code(args.command, stage_main(args.command)())
    if args.command == "repro":
        return exit_code("repro", _repro(rest))
    if args.command in FORWARDED:
        return exit_code(args.command, forwarded_main(args.command)(rest))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
