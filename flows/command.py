"""`vr pipeline`: run the Prefect flow of flows/pipeline.py, unless the workspace is already up to date and
registered (checked first, without importing Prefect: an up-to-date re-run costs seconds)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from videoreasoner.core import telemetry  # noqa: F401
from flows.cli_logging import cli_logging
from flows.lineage import already_done
from flows.next_steps import next_steps
from videoreasoner.core.tracking import redact

log = logging.getLogger("flows.pipeline")
PIPELINE_DOC = """The pipeline as a Prefect flow: one task per DVC stage (`dvc repro <stage>`), then MLflow
registration and gated promotion. See flows/pipeline.py."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vr pipeline", description=PIPELINE_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", help="workspace root (holds dvc.yaml)")
    parser.add_argument("--force", action="store_true", help="re-run every stage (dvc repro --force)")
    parser.add_argument("--no-register", action="store_true", help="skip registration and promotion")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="if another flow holds this workspace, wait up to SECONDS for it (default: refuse)")
    args = parser.parse_args(argv)
    cli_logging()
    if not args.force and (reason := already_done(args.repo, not args.no_register)):
        log.info("nothing to do: %s (--force re-runs every stage)", reason)
        if not args.no_register:
            _record_revision(args.repo)
        for line in next_steps(args.repo):
            log.info("%s", line)
        return 0
    from flows.pipeline import StageFailed, WorkspaceBusy, pipeline  # Prefect only when there is work

    try:
        summary = pipeline(repo=args.repo, force=args.force, register_model=not args.no_register,
                           lock_timeout_s=args.wait)
    except WorkspaceBusy as exc:
        log.error("%s", exc)
        return 75  # EX_TEMPFAIL: try again later
    except StageFailed as exc:  # the flow run is marked failed in Prefect and MLflow; the shell must see it too
        log.error("pipeline failed: %s", exc)
        return 1
    repo = Path(args.repo).resolve()
    report = repo / "reports/eval/report.html"
    champion = (summary.get("registry") or {}).get("champion")
    log.info("stages: %s", ", ".join(f"{s} {r}" for s, r in summary["stages"].items()))
    log.info("report: %s", report if report.is_file() else f"{report} (not written: no evaluate stage yet)")
    uri = redact(summary["tracking_uri"])
    ui = uri if uri.startswith("http") else f"`vr servers mlflow`, then http://127.0.0.1:5000 (store {uri})"
    log.info("MLflow UI: %s; this pipeline's runs carry tag pipeline_run_id=%s", ui, summary["pipeline_run_id"])
    log.info("Prefect UI: `vr servers prefect-ui`, then http://127.0.0.1:4200 (flow runs in PREFECT_HOME=%s)",
             os.environ["PREFECT_HOME"])
    log.info("champion: %s", f"version {champion}" if champion else "none registered yet")
    for line in next_steps(repo):
        log.info("%s", line)
    return 0


def _record_revision(repo: str) -> None:
    """An up-to-date workspace whose run was committed since it was registered: put the commit on the
    version (flows/revision.py), without starting Prefect."""
    from flows.aliases import find_version
    from flows.gates import load_rules
    from flows.lineage import lineage_tags
    from flows.registry_tracking import tracking_setup
    from flows.revision import record_revision

    tracking_setup(repo)
    rules = load_rules(Path(repo) / "mlflow/registry.yaml")
    version = find_version(rules, "dvc_lock_hash", lineage_tags(repo)["dvc_lock_hash"])
    if version and (rev := record_revision(repo, rules.model_name, version)):
        log.info("%s version %s: DVC revision %s recorded", rules.model_name, version, rev)


if __name__ == "__main__":
    sys.exit(main())
