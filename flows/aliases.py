"""The alias lifecycle of registered versions: `challenger` is every new version (set by
flows/registration.py); `champion` moves only when the gates of mlflow/registry.yaml pass
(flows/gates.py), or by hand with `--force`, and `rollback` walks it back through the champion
history (the registered model's tag `champion_history`). A version still tagged `registration=pending`
is never found, promoted or rolled back to. MLflow calls are retried while the server is unreachable
(flows/retries.py), then fail with RegistryUnavailable."""
from __future__ import annotations

import json
import logging
from typing import Any

from flows.gates import Decision, Rules, gate_decision
from flows.registry_tracking import mlflow_client
from flows.retries import is_transient, retrying
from flows.version_tags import COMPLETE, HISTORY_TAG, METRIC_TAG, PENDING, REGISTRATION_TAG

log = logging.getLogger("flows.registry")  # one logger for the registry's modules, as users know it


def alias_version(rules: Rules, alias: str) -> str | None:
    """The version `alias` points to; None when the alias or model does not exist. An unreachable
    server is an error, not None: a missing champion would let any version through the gates."""
    from mlflow.exceptions import MlflowException

    def read() -> str | None:
        try:
            return str(mlflow_client().get_model_version_by_alias(rules.model_name, alias).version)
        except MlflowException as exc:
            if is_transient(exc):
                raise
            return None

    return retrying(f"reading alias {alias!r} of {rules.model_name}", read)


def _require_complete(rules: Rules, version: str) -> None:
    mv = retrying(f"reading {rules.model_name} version {version}", mlflow_client().get_model_version,
                  rules.model_name, str(version))
    if (mv.tags or {}).get(REGISTRATION_TAG) == PENDING:
        raise ValueError(f"{rules.model_name} version {version}: registration never completed "
                         f"(tag {REGISTRATION_TAG}={PENDING}); it cannot become {rules.champion}")


def version_metrics(rules: Rules, version: str) -> dict[str, float]:
    """A version's metrics: its run's metrics, else its `metric.*` tags."""
    def read() -> dict[str, float]:
        client = mlflow_client()
        mv = client.get_model_version(rules.model_name, str(version))
        tags = {k[len(METRIC_TAG):]: float(v) for k, v in (mv.tags or {}).items() if k.startswith(METRIC_TAG)}
        run_id = mv.run_id or (mv.tags or {}).get("run_id")
        run_metrics = dict(client.get_run(run_id).data.metrics) if run_id else {}
        return run_metrics or tags

    return retrying(f"reading the metrics of {rules.model_name} version {version}", read)


def _history(rules: Rules) -> list[str]:
    model = retrying(f"reading {rules.model_name}", mlflow_client().get_registered_model, rules.model_name)
    return [str(v) for v in json.loads((model.tags or {}).get(HISTORY_TAG, "[]"))]


def _set_champion(rules: Rules, version: str, history: list[str]) -> None:
    """Move the alias and record the history; both idempotent, so the pair may be retried."""
    def move() -> None:
        client = mlflow_client()
        client.set_registered_model_alias(rules.model_name, rules.champion, version)
        client.set_registered_model_tag(rules.model_name, HISTORY_TAG, json.dumps(history))

    retrying(f"moving {rules.champion!r} to {rules.model_name} version {version}", move)


def promote(rules: Rules, version: str, force: bool = False) -> Decision:
    """Move `champion` to `version` when the gates pass against the current champion (or `force`)."""
    version, client = str(version), mlflow_client()
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
    client, rows = mlflow_client(), []
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
    for mv in retrying("listing versions", mlflow_client().search_model_versions, f"name = '{rules.model_name}'"):
        tags = mv.tags or {}
        if tags.get(tag) == value and tags.get(REGISTRATION_TAG) != PENDING:
            return str(mv.version)
    return None
