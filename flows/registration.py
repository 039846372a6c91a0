"""Register the rl model + processor + TTS policy as one MLflow pyfunc version, aliased `challenger`.

No half-made versions: a version is created last (after its run and pyfunc are logged) and tagged
`registration=pending` until its tags and alias are set; a registration that fails after that deletes
it again and gives `challenger` back. MLflow calls are retried while the server is unreachable
(flows/retries.py), then fail with RegistryUnavailable naming the server. If the server is gone for the
clean-up too, the pending version stays: it is never found, promoted or rolled back to, and the next
registration deletes it (once older than STALE_PENDING_S, so a concurrent registration is not hit).
A promotion the server refuses (HTTP 403: a registrar on the team server) leaves the version challenger.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from flows.aliases import alias_version, promote
from flows.gates import Rules, read_ladder_metrics
from flows.model_logging import log_model_run
from flows.registry_tracking import mlflow_client
from flows.retries import RegistryUnavailable, is_transient, retrying
from flows.version_tags import COMPLETE, METRIC_TAG, PENDING, REGISTRATION_TAG

log = logging.getLogger("flows.registry")  # one logger for the registry's modules, as users know it
STALE_PENDING_S = 600.0  # a pending version older than this was left by a failed registration
# Shipped inside each version (MLflow code_paths), so it loads wherever MLflow does: flows/pyfunc_model.py
# and the library its predictor imports (videoreasoner/inference/ and what that imports).
SHIPPED_CODE = ("flows", "videoreasoner")


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
    client, tags, name = mlflow_client(), dict(tags or {}), rules.model_name
    existed = retrying(f"looking up registered model {name!r}", client.search_registered_models, f"name = '{name}'")
    sweep_pending(rules)
    previous = alias_version(rules, rules.challenger)
    run_id = version = None
    try:
        run_id, model_uri = log_model_run(model_dir, policy, metrics, settings, tags, parent_run_id,
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


def _run_versions(rules: Rules, run_id: str) -> list[str]:
    """Versions of the model registered from run `run_id` (at most one, unless a retry raced)."""
    found = mlflow_client().search_model_versions(f"name = '{rules.model_name}' and run_id = '{run_id}'")
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
        mlflow_client().delete_model_version(rules.model_name, version)
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
            retrying(f"restoring alias {rules.challenger!r}", mlflow_client().set_registered_model_alias, name,
                     rules.challenger, previous_challenger)
        if not existed and versions and not retrying("listing versions", mlflow_client().search_model_versions,
                                                     f"name = '{name}'"):
            retrying(f"deleting registered model {name!r}", mlflow_client().delete_registered_model, name)
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
    for mv in retrying("listing versions", mlflow_client().search_model_versions, f"name = '{rules.model_name}'"):
        if (mv.tags or {}).get(REGISTRATION_TAG) == PENDING and now_ms - mv.creation_timestamp >= older_than_s * 1000:
            log.warning("deleting %s version %s: left unfinished by a failed registration", rules.model_name,
                        mv.version)
            retrying(f"deleting unfinished version {mv.version}", _delete_version, rules, str(mv.version))
            swept.append(str(mv.version))
    return swept


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
                       code_paths=[str(repo / folder) for folder in SHIPPED_CODE])
    from mlflow.exceptions import MlflowException

    try:
        decision = promote(rules, version)
    except MlflowException as exc:
        # On a team server a registrar may register but not move champion (HTTP 403, flows/team_auth.py):
        # the version is complete and stays challenger; promoting it is the admin's step.
        if exc.get_http_status_code() != 403:
            raise
        log.warning("%s version %s registered; %s not moved: %s", rules.model_name, version, rules.champion, exc)
        return {"version": version, "promoted": False, "champion": alias_version(rules, rules.champion),
                "decision": f"not promoted: this user may not move {rules.champion!r} (HTTP 403); an admin "
                            f"runs `vr registry promote {version}`"}
    return {"version": version, "promoted": decision.passed and decision.reasons != ("already champion",),
            "decision": decision.summary(), "champion": alias_version(rules, rules.champion)}
