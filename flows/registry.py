"""The model registry: register the rl model + processor + TTS policy as one MLflow pyfunc, move aliases.

Every new version gets `challenger`; `champion` moves only when the gates of mlflow/registry.yaml pass
(flows/gates.py). A registration that fails after its version exists deletes that version again (and
moves no alias), so the registry never holds a half-made version. Champion history lives in the
registered model's tag `champion_history` (JSON list of versions), which `rollback` walks back.
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

from stages import telemetry  # noqa: F401
from flows.gates import Decision, Rules, gate_decision, load_rules, read_ladder_metrics

log = logging.getLogger("flows.registry")  # not __name__: it is __main__ under python -m
METRIC_TAG = "metric."
HISTORY_TAG = "champion_history"
REQUIREMENTS = ("mlflow", "torch", "torchvision", "transformers", "av", "numpy", "pandas", "pillow", "pyyaml")


def tracking_setup(repo: str | Path = ".") -> tuple[str, str]:
    """Point MLflow at MLFLOW_TRACKING_URI, else the embedded sqlite store of `repo`; returns (uri,
    experiment id) of the experiment every stage logs to (artifacts under <repo>/mlflow/artifacts)."""
    import mlflow

    from stages.tracking import ARTIFACTS_DIR, EXPERIMENT

    repo = Path(repo).resolve()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        artifacts = None
        if not uri.startswith(("http://", "https://")):  # a server chooses its own artifact root
            (repo / ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
            artifacts = (repo / ARTIFACTS_DIR).as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    return uri, mlflow.set_experiment(EXPERIMENT).experiment_id


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
    (tests)."""
    import mlflow

    from flows.pyfunc_model import VideoReasonerModel
    from stages.tracking import _flatten

    client, tags, version = _client(), dict(tags or {}), None
    existed = client.search_registered_models(f"name = '{rules.model_name}'")
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                mlflow.start_run(run_name="register", parent_run_id=parent_run_id, tags=tags) as run:
            settings_file = Path(tmp) / "settings.json"
            settings_file.write_text(json.dumps(settings or {}, indent=2, sort_keys=True), encoding="utf-8")
            if settings:
                mlflow.log_params({k: str(v)[:6000] for k, v in _flatten(settings).items()})
            mlflow.log_metrics(metrics)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=VideoReasonerModel(predictor_factory),
                artifacts={"model": str(model_dir), "policy": str(policy), "settings": str(settings_file)},
                code_paths=code_paths, pip_requirements=_requirements(), signature=_signature())
            created = mlflow.register_model(info.model_uri, rules.model_name, tags=tags)
            version = str(created.version)
            _tag_version(client, rules.model_name, version,
                         {f"{METRIC_TAG}{k}": v for k, v in metrics.items()} | {"run_id": run.info.run_id})
            client.set_registered_model_alias(rules.model_name, rules.challenger, version)  # last step
    except BaseException:
        if version is not None:
            log.error("registration failed after creating %s version %s: deleting it", rules.model_name, version)
            client.delete_model_version(rules.model_name, version)
            if not existed and not client.search_model_versions(f"name = '{rules.model_name}'"):
                client.delete_registered_model(rules.model_name)
        raise
    log.info("registered %s version %s (alias %s)", rules.model_name, version, rules.challenger)
    return version


def version_metrics(rules: Rules, version: str) -> dict[str, float]:
    """A version's metrics: its run's metrics, else its `metric.*` tags."""
    client = _client()
    mv = client.get_model_version(rules.model_name, str(version))
    tags = {k[len(METRIC_TAG):]: float(v) for k, v in (mv.tags or {}).items() if k.startswith(METRIC_TAG)}
    run_id = mv.run_id or (mv.tags or {}).get("run_id")
    run_metrics = dict(client.get_run(run_id).data.metrics) if run_id else {}
    return run_metrics or tags


def alias_version(rules: Rules, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(rules.model_name, alias).version)
    except MlflowException:
        return None


def _history(rules: Rules) -> list[str]:
    tags = _client().get_registered_model(rules.model_name).tags or {}
    return [str(v) for v in json.loads(tags.get(HISTORY_TAG, "[]"))]


def _set_champion(rules: Rules, version: str, history: list[str]) -> None:
    client = _client()
    client.set_registered_model_alias(rules.model_name, rules.champion, version)
    client.set_registered_model_tag(rules.model_name, HISTORY_TAG, json.dumps(history))


def promote(rules: Rules, version: str, force: bool = False) -> Decision:
    """Move `champion` to `version` when the gates pass against the current champion (or `force`)."""
    version, client = str(version), _client()
    current = alias_version(rules, rules.champion)
    if current == version:
        return Decision(True, ("already champion",))
    decision = gate_decision(version_metrics(rules, version),
                             version_metrics(rules, current) if current else None, rules)
    if force and not decision.passed:
        decision = Decision(True, ("forced",) + decision.reasons)
    client.set_model_version_tag(rules.model_name, version, "gate_decision", decision.summary()[:5000])
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
        _client().get_model_version(rules.model_name, str(to))  # raises if it does not exist
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
                     "run_id": mv.run_id})
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)


def find_version(rules: Rules, tag: str, value: str) -> str | None:
    """A version whose tag `tag` equals `value` (e.g. the same dvc.lock hash), or None."""
    for mv in _client().search_model_versions(f"name = '{rules.model_name}'"):
        if (mv.tags or {}).get(tag) == value:
            return str(mv.version)
    return None


def register_workspace(repo: str | Path, rules: Rules, *, tags: dict[str, str],
                       parent_run_id: str | None = None) -> dict[str, Any]:
    """The flow's step: register the workspace's rl model + policy + eval metrics, then try to promote."""
    from stages.params import load_params

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
    rules = load_rules(args.rules)
    uri, _ = tracking_setup(".")
    log.info("registry %s at %s", rules.model_name, uri)
    if args.command == "list":
        rows = list_versions(rules)
        if args.json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        for row in rows:
            log.info("v%-4s %-22s %s %s %s", row["version"], ",".join(row["aliases"]) or "-",
                     json.dumps(row["metrics"]), row["git_commit"][:10], row["gate_decision"])
        return 0
    if args.command == "register":
        from flows.pipeline import lineage_tags

        result = register_workspace(".", rules, tags=lineage_tags("."))
        log.info("%s", result)
        return 0
    if args.command == "promote":
        return 0 if promote(rules, args.version, force=args.force).passed else 1
    rollback(rules, args.to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
