"""`vr`: the commands users run by hand. Each subcommand calls a stage's own entry point, so the
command line and `dvc repro` run exactly the same code with the same params.yaml.

  vr generate | ingest | validate | bootstrap | sft | rl | tts | evaluate
                                       run one stage directly (no DVC bookkeeping)
  vr repro [STAGE ...]                 `dvc repro` the pipeline (or up to STAGE), no flow, no registry
  vr pipeline [--force] [--no-register]
                                       the Prefect flow: every stage in DAG order, then MLflow
                                       registration and gated promotion
  vr registry list|register|promote V|rollback [--to V]
  vr servers mlflow [--auth] | prefect-ui | serve [--deployment nightly]
  vr score --split S --predictions P --out DIR   score any model's predictions with our metrics

Every command returns its stage's exit code (0 only on success), so shells, CI and `vr` inside scripts
see a failed data gate or a failed flow as a failure.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import subprocess
import sys

from videoreasoner.core import telemetry  # noqa: F401

STAGE_MODULES = {name: f"stages.{name}" for name in
                 ("generate", "ingest", "validate", "bootstrap", "sft", "rl", "tts", "evaluate")}

FORWARDED = {"pipeline": "flows.command", "registry": "flows.registry_cli", "servers": "flows.servers",
             "score": "videoreasoner.answers.score"}


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
    for name in STAGE_MODULES:
        sub.add_parser(name, help=f"run the {name} stage with params.yaml")
    for name, text in (("repro", "dvc repro the pipeline, or the given stages (dvc repro's options pass through)"),
                       ("pipeline", "the Prefect flow over every stage, then registration"),
                       ("registry", "list, register, promote or roll back model versions"),
                       ("servers", "start the MLflow server, the Prefect UI or the scheduled deployment"),
                       ("score", "score a predictions JSONL against a validated split")):
        sub.add_parser(name, help=text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpcore"):  # Prefect's API client logs every request at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)

    if args.command in STAGE_MODULES:
        if rest:  # a stage reads params.yaml only: an option here would be silently ignored
            parser.error(f"vr {args.command} takes no arguments (its settings live in params.yaml): {' '.join(rest)}")
        return exit_code(args.command, importlib.import_module(STAGE_MODULES[args.command]).main())
    if args.command == "repro":
        return exit_code("repro", _repro(rest))
    if args.command in FORWARDED:
        return exit_code(args.command, importlib.import_module(FORWARDED[args.command]).main(rest))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
