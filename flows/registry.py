"""The model registry: register the rl model + processor + TTS policy as one MLflow pyfunc, move aliases.

Every new version gets `challenger`; `champion` moves only when the gates of mlflow/registry.yaml pass
(flows/gates.py). Champion history lives in the registered model's tag `champion_history` (JSON list
of versions), which `rollback` walks back.
No half-made versions: a version is created last (after its run and pyfunc are logged) and tagged
`registration=pending` until its tags and alias are set; a registration that fails after that deletes
it again and gives `challenger` back. MLflow calls are retried while the server is unreachable
(flows/retries.py), then fail with RegistryUnavailable naming the server. If the server is gone for the
clean-up too, the pending version stays: it is never found, promoted or rolled back to, and the next
registration deletes it (once older than STALE_PENDING_S, so a concurrent registration is not hit).
  vr registry list | register | promote VERSION [--force] | rollback [--to VERSION]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from videoreasoner.core import telemetry  # noqa: F401
from flows.gates import Decision, Rules, gate_decision, load_rules, read_ladder_metrics
from flows.retries import RegistryUnavailable, is_transient, redact, retrying

log = logging.getLogger("flows.registry")  # not __name__: it is __main__ under python -m
METRIC_TAG = "metric."
HISTORY_TAG = "champion_history"
REGISTRATION_TAG, PENDING, COMPLETE = "registration", "pending", "complete"
STALE_PENDING_S = 600.0  # a pending version older than this was left by a failed registration
REQUIREMENTS = ("mlflow", "torch", "torchvision", "transformers", "av", "numpy", "pandas", "pillow", "pyyaml")


def tracking_uri(repo: str | Path = ".") -> str:
    """MLFLOW_TRACKING_URI, else the embedded sqlite store of `repo`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(repo).resolve() / 'mlflow' / 'mlflow.db'}"


def tracking_setup(repo: str | Path = ".") -> tuple[str, str]:
    """Point MLflow at MLFLOW_TRACKING_URI, else the embedded sqlite store of `repo`; returns (uri,
    experiment id) of the experiment every stage logs to (artifacts under <repo>/mlflow/artifacts)."""
    import mlflow

    from videoreasoner.core.tracking import ARTIFACTS_DIR, EXPERIMENT

    repo = Path(repo).resolve()
    uri = tracking_uri(repo)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)

    def get_or_create() -> str:  # idempotent, so it may be retried
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            artifacts = None
            if not uri.startswith(("http://", "https://")):  # a server chooses its own artifact root
                (repo / ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
                artifacts = (repo / ARTIFACTS_DIR).as_uri()
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
        return mlflow.set_experiment(EXPERIMENT).experiment_id

    return uri, retrying(f"opening experiment {EXPERIMENT!r}", get_or_create)


def cli_logging() -> None:
    """INFO logs of flows.* on stderr for the commands (Prefect's root handler shows warnings only)."""
    logger = logging.getLogger("flows")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def _requirements() -> list[str]:
    reqs = []
    for name in REQUIREMENTS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            reqs.append(f"{name}=={metadata.version(name)}")
    return reqs


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema([ColSpec("string", "video"), ColSpec("string", "question"),
                     ColSpec("string", "problem_type", required=False),
                     ColSpec(Array("string"), "options", required=False)])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("string")]))


def _tag_version(client, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:5000])


def register(rules: Rules, model_dir: str | Path, policy: str | Path, metrics: dict[str, float], *,
             settings: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
             parent_run_id: str | None = None, predictor_factory: Callable | None = None,
             code_paths: list[str] | None = None) -> str:
    """Log model + processor + policy as one pyfunc, register it, tag it, alias it `challenger`.

    Metrics go to the run (all) and to version tags `metric.<name>`; settings to params and settings.json;
    `tags` (lineage: git commit, dvc.lock hashes, pipeline run id) to the run and the version.
    Returns the new version (always a string). `predictor_factory` replaces the real inference engine
    (tests). Raises RegistryUnavailable when the server stays unreachable; nothing half-made is kept."""
    client, tags, name = _client(), dict(tags or {}), rules.model_name
    existed = retrying(f"looking up registered model {name!r}", client.search_registered_models, f"name = '{name}'")
    sweep_pending(rules)
    previous = alias_version(rules, rules.challenger)
    run_id = version = None
    try:
        run_id, model_uri = _log_model_run(model_dir, policy, metrics, settings, tags, parent_run_id,
                                           predictor_factory, code_paths)
        version = _create_version(rules, model_uri, run_id, tags)
        retrying(f"tagging {name} version {version}", _tag_version, client, name, version,
                 {f"{METRIC_TAG}{k}": v for k, v in metrics.items()} | {"run_id": run_id})
        retrying(f"setting alias {rules.challenger!r}", client.set_registered_model_alias, name,
                 rules.challenger, version)
        retrying(f"completing {name} version {version}", client.set_model_version_tag, name, version,
                 REGISTRATION_TAG, COMPLETE)  # last step: from here on the version counts
    except BaseException as exc:
        note = _discard(rules, run_id, version, previous, bool(existed))
        if isinstance(exc, RegistryUnavailable):
            raise RegistryUnavailable(f"{exc}\nregistration of {name} failed: {note}") from exc
        raise
    log.info("registered %s version %s (alias %s)", name, version, rules.challenger)
    return version


def _log_model_run(model_dir, policy, metrics, settings, tags, parent_run_id, predictor_factory,
                   code_paths) -> tuple[str, str]:
    """A finished MLflow run holding the pyfunc (model + processor + policy + settings): (run id, model
    uri). Each call is retried on its own; a retried log_model only leaves an unused logged model."""
    import mlflow

    from flows.pyfunc_model import MODEL_CONFIG, VideoReasonerModel
    from videoreasoner.core.tracking import _flatten

    run = retrying("starting the registration run", mlflow.start_run, run_name="register",
                   parent_run_id=parent_run_id, tags=tags)
    with tempfile.TemporaryDirectory() as tmp, run:
        settings_file = Path(tmp) / "settings.json"
        settings_file.write_text(json.dumps(settings or {}, indent=2, sort_keys=True), encoding="utf-8")
        if settings:
            retrying("logging params", mlflow.log_params,
                     {k: str(v)[:6000] for k, v in _flatten(settings).items()})
        retrying("logging metrics", mlflow.log_metrics, metrics)
        info = retrying("logging the pyfunc model", mlflow.pyfunc.log_model,
                        name="model", python_model=VideoReasonerModel(predictor_factory),
                        artifacts={"model": str(model_dir), "policy": str(policy), "settings": str(settings_file)},
                        code_paths=code_paths, pip_requirements=_requirements(), signature=_signature(),
                        model_config=MODEL_CONFIG)  # allowed video roots, overridable at load
    return run.info.run_id, info.model_uri


def _run_versions(rules: Rules, run_id: str) -> list[str]:
    """Versions of the model registered from run `run_id` (at most one, unless a retry raced)."""
    found = _client().search_model_versions(f"name = '{rules.model_name}' and run_id = '{run_id}'")
    return sorted(str(mv.version) for mv in found)


def _create_version(rules: Rules, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
    """Create the version, tagged pending. Made idempotent for retrying: a create whose answer was lost
    may still have reached the server, so each attempt first looks for this run's version."""
    import mlflow

    def attempt() -> str:
        mine = _run_versions(rules, run_id)
        if mine:
            return mine[0]
        created = mlflow.register_model(model_uri, rules.model_name, tags=tags | {REGISTRATION_TAG: PENDING})
        return str(created.version)

    return retrying(f"creating a version of {rules.model_name}", attempt)


def _delete_version(rules: Rules, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        _client().delete_model_version(rules.model_name, version)
    except MlflowException as exc:
        if is_transient(exc) or "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code):
            raise


def _discard(rules: Rules, run_id: str | None, version: str | None, previous_challenger: str | None,
             existed: bool) -> str:
    """Undo a failed registration: delete its version (found by run id too: a create whose answer was
    lost), give `challenger` back, drop a registered model this registration created. Returns what
    happened, for the error message; when the server is gone for this too, the version stays pending."""
    name, versions = rules.model_name, [version] if version else []
    try:
        if run_id:
            versions = sorted(set(versions) | set(retrying("finding the unfinished version", _run_versions,
                                                           rules, run_id)))
        for v in versions:
            log.error("registration failed after creating %s version %s: deleting it", name, v)
            retrying(f"deleting unfinished {name} version {v}", _delete_version, rules, v)
        if previous_challenger and alias_version(rules, rules.challenger) != previous_challenger:
            retrying(f"restoring alias {rules.challenger!r}", _client().set_registered_model_alias, name,
                     rules.challenger, previous_challenger)
        if not existed and versions and not retrying("listing versions", _client().search_model_versions,
                                                     f"name = '{name}'"):
            retrying(f"deleting registered model {name!r}", _client().delete_registered_model, name)
    except RegistryUnavailable as exc:
        log.error("could not clean up after the failed registration: %s", exc)
        return (f"version(s) {', '.join(versions) or '(unknown)'} could not be deleted and stay tagged "
                f"{REGISTRATION_TAG}={PENDING}: never found, promoted or rolled back to; the next "
                "registration deletes them")
    return f"unfinished version {', '.join(versions)} deleted" if versions else "no model version was created"


def sweep_pending(rules: Rules, older_than_s: float | None = None) -> list[str]:
    """Delete versions left `pending` by a registration that could not clean up (server down)."""
    import time

    older_than_s = STALE_PENDING_S if older_than_s is None else older_than_s
    now_ms, swept = time.time() * 1000, []
    for mv in retrying("listing versions", _client().search_model_versions, f"name = '{rules.model_name}'"):
        if (mv.tags or {}).get(REGISTRATION_TAG) == PENDING and now_ms - mv.creation_timestamp >= older_than_s * 1000:
            log.warning("deleting %s version %s: left unfinished by a failed registration", rules.model_name,
                        mv.version)
            retrying(f"deleting unfinished version {mv.version}", _delete_version, rules, str(mv.version))
            swept.append(str(mv.version))
    return swept


def _require_complete(rules: Rules, version: str) -> None:
    mv = retrying(f"reading {rules.model_name} version {version}", _client().get_model_version,
                  rules.model_name, str(version))
    if (mv.tags or {}).get(REGISTRATION_TAG) == PENDING:
        raise ValueError(f"{rules.model_name} version {version}: registration never completed "
                         f"(tag {REGISTRATION_TAG}={PENDING}); it cannot become {rules.champion}")


def version_metrics(rules: Rules, version: str) -> dict[str, float]:
    """A version's metrics: its run's metrics, else its `metric.*` tags."""
    def read() -> dict[str, float]:
        client = _client()
        mv = client.get_model_version(rules.model_name, str(version))
        tags = {k[len(METRIC_TAG):]: float(v) for k, v in (mv.tags or {}).items() if k.startswith(METRIC_TAG)}
        run_id = mv.run_id or (mv.tags or {}).get("run_id")
        run_metrics = dict(client.get_run(run_id).data.metrics) if run_id else {}
        return run_metrics or tags

    return retrying(f"reading the metrics of {rules.model_name} version {version}", read)


def alias_version(rules: Rules, alias: str) -> str | None:
    """The version `alias` points to; None when the alias or model does not exist. An unreachable
    server is an error, not None: a missing champion would let any version through the gates."""
    from mlflow.exceptions import MlflowException

    def read() -> str | None:
        try:
            return str(_client().get_model_version_by_alias(rules.model_name, alias).version)
        except MlflowException as exc:
            if is_transient(exc):
                raise
            return None

    return retrying(f"reading alias {alias!r} of {rules.model_name}", read)


def _history(rules: Rules) -> list[str]:
    model = retrying(f"reading {rules.model_name}", _client().get_registered_model, rules.model_name)
    return [str(v) for v in json.loads((model.tags or {}).get(HISTORY_TAG, "[]"))]


def _set_champion(rules: Rules, version: str, history: list[str]) -> None:
    """Move the alias and record the history; both idempotent, so the pair may be retried."""
    def move() -> None:
        client = _client()
        client.set_registered_model_alias(rules.model_name, rules.champion, version)
        client.set_registered_model_tag(rules.model_name, HISTORY_TAG, json.dumps(history))

    retrying(f"moving {rules.champion!r} to {rules.model_name} version {version}", move)


def promote(rules: Rules, version: str, force: bool = False) -> Decision:
    """Move `champion` to `version` when the gates pass against the current champion (or `force`)."""
    version, client = str(version), _client()
    current = alias_version(rules, rules.champion)
    if current == version:
        return Decision(True, ("already champion",))
    _require_complete(rules, version)
    decision = gate_decision(version_metrics(rules, version),
                             version_metrics(rules, current) if current else None, rules)
    if force and not decision.passed:
        decision = Decision(True, ("forced",) + decision.reasons)
    retrying(f"tagging {rules.model_name} version {version}", client.set_model_version_tag, rules.model_name,
             version, "gate_decision", decision.summary()[:5000])
    if decision.passed:
        _set_champion(rules, version, _history(rules) + [version])
        log.info("%s version %s is now %s (was %s): %s", rules.model_name, version, rules.champion,
                 current, decision.summary())
    else:
        log.info("%s version %s stays %s: %s", rules.model_name, version, rules.challenger, decision.summary())
    return decision


def rollback(rules: Rules, to: str | None = None) -> str:
    """Give `champion` back to the previous champion (or to version `to`); returns the new champion."""
    history = _history(rules)
    current = alias_version(rules, rules.champion)
    if to is None:
        while history and history[-1] == current:
            history.pop()
        if not history:
            raise RuntimeError(f"{rules.model_name}: no earlier champion to roll back to")
        to = history[-1]
    else:
        _require_complete(rules, str(to))  # raises if it does not exist
        history.append(str(to))
    _set_champion(rules, str(to), history)
    log.info("%s: %s rolled back from version %s to %s", rules.model_name, rules.champion, current, to)
    return str(to)


def list_versions(rules: Rules) -> list[dict[str, Any]]:
    """Newest first: version, aliases, gate metrics, git commit, gate decision, run id."""
    client, rows = _client(), []
    aliases: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(rules.model_name).aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    for mv in client.search_model_versions(f"name = '{rules.model_name}'"):
        tags = mv.tags or {}
        rows.append({"version": str(mv.version), "aliases": sorted(aliases.get(str(mv.version), [])),
                     "metrics": {g.metric: tags.get(METRIC_TAG + g.metric) for g in rules.gates},
                     "git_commit": tags.get("git_commit", ""), "gate_decision": tags.get("gate_decision", ""),
                     "run_id": mv.run_id, "registration": tags.get(REGISTRATION_TAG, COMPLETE)})
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)


def find_version(rules: Rules, tag: str, value: str) -> str | None:
    """A completely registered version whose tag `tag` equals `value` (e.g. the same dvc.lock hash)."""
    for mv in retrying("listing versions", _client().search_model_versions, f"name = '{rules.model_name}'"):
        tags = mv.tags or {}
        if tags.get(tag) == value and tags.get(REGISTRATION_TAG) != PENDING:
            return str(mv.version)
    return None


def register_workspace(repo: str | Path, rules: Rules, *, tags: dict[str, str],
                       parent_run_id: str | None = None) -> dict[str, Any]:
    """The flow's step: register the workspace's rl model + policy + eval metrics, then try to promote."""
    from videoreasoner.core.params import load_params

    repo = Path(repo).resolve()
    model_name, metrics = read_ladder_metrics(repo / rules.metrics, rules.eval_models)
    params = load_params(repo / "params.yaml")
    settings = {k: params[k] for k in rules.settings if k in params} | {"eval_model": model_name}
    version = register(rules, repo / rules.model_dir, repo / rules.policy, metrics, settings=settings,
                       tags=tags, parent_run_id=parent_run_id,
                       code_paths=[str(repo / "flows"), str(repo / "stages")])
    decision = promote(rules, version)
    return {"version": version, "promoted": decision.passed and decision.reasons != ("already champion",),
            "decision": decision.summary(), "champion": alias_version(rules, rules.champion)}


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
        from flows.lineage import lineage_tags

        result = register_workspace(".", rules, tags=lineage_tags("."))
        log.info("%s", result)
        return 0
    if args.command == "promote":
        return 0 if promote(rules, args.version, force=args.force).passed else 1
    rollback(rules, args.to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
