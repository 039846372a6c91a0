"""`vr registry`: list the registered versions, register the workspace's model, move `champion`.

  vr registry list [--json] | register | promote VERSION [--force] | rollback [--to VERSION]

Rules (model name, gates, margins) come from mlflow/registry.yaml (`--rules`). Exit codes: 0 done,
1 the gates refused a promotion, 75 the tracking server stayed unreachable (nothing half-made was left).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from videoreasoner.core import telemetry  # noqa: F401
from flows.aliases import list_versions, promote, rollback
from flows.cli_logging import cli_logging
from flows.gates import load_rules
from flows.lineage import lineage_tags
from flows.registration import register_workspace
from flows.registry_tracking import tracking_setup
from flows.retries import RegistryUnavailable, redact
from flows.version_tags import PENDING

log = logging.getLogger("flows.registry")  # not __name__: it is __main__ under python -m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vr registry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", default=str(Path("mlflow/registry.yaml")))
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list versions with aliases and gate metrics")
    listing.add_argument("--json", action="store_true", help="write JSON to stdout")
    sub.add_parser("register", help="register models/rl + the TTS policy + eval metrics, then try to promote")
    prom = sub.add_parser("promote", help="move champion to VERSION if the gates pass")
    prom.add_argument("version")
    prom.add_argument("--force", action="store_true", help="skip the gates")
    back = sub.add_parser("rollback", help="give champion back to the previous champion")
    back.add_argument("--to", help="a specific version instead of the previous champion")
    args = parser.parse_args(argv)
    cli_logging()
    try:
        return _command(args)
    except RegistryUnavailable as exc:
        log.error("%s", exc)
        return 75  # EX_TEMPFAIL: the server is down; nothing half-made was left registered


def _command(args: argparse.Namespace) -> int:
    rules = load_rules(args.rules)
    uri, _ = tracking_setup(".")
    log.info("registry %s at %s", rules.model_name, redact(uri))
    if args.command == "list":
        rows = list_versions(rules)
        if args.json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        for row in rows:
            log.info("v%-4s %-22s %s %s %s%s", row["version"], ",".join(row["aliases"]) or "-",
                     json.dumps(row["metrics"]), row["git_commit"][:10], row["gate_decision"],
                     " (unfinished registration)" if row["registration"] == PENDING else "")
        return 0
    if args.command == "register":
        result = register_workspace(".", rules, tags=lineage_tags("."))
        log.info("%s", result)
        return 0
    if args.command == "promote":
        return 0 if promote(rules, args.version, force=args.force).passed else 1
    rollback(rules, args.to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
