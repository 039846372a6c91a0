"""Registry permissions on the team MLflow server (`vr servers up --auth`): an admin, a registrar, a reader.

MLflow's permission levels cannot tell "register a version" from "move an alias": both need `update`
(EDIT) on the registered model (mlflow.server.auth: validate_can_create_model_version and
validate_can_set_model_or_prompt_version_alias). So the registrar holds EDIT on the registered model and
on the pipeline's experiment (runs, versions, version tags, alias `challenger`), and one rule of ours,
run by the server as its authentication function (the auth config's `authorization_function`), refuses
setting or deleting the protected alias (`champion`, from mlflow/registry.yaml) with HTTP 403 unless the
user is an MLflow admin or holds MANAGE on that registered model. The reader has READ (also the
server's default_permission). Because MLflow gives whoever creates a registered model MANAGE on it,
`vr servers users` creates the registered model as the admin first.

  vr servers users    (the server runs; as admin MLFLOW_TRACKING_USERNAME/PASSWORD) creates or updates
                      VR_REGISTRAR_USERNAME/VR_REGISTRAR_PASSWORD and VR_READER_USERNAME/VR_READER_PASSWORD
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUTH_FUNCTION = "flows.team_auth:authenticate_and_guard_champion"
ALIAS_ROUTE = "/registered-models/alias"  # SetRegisteredModelAlias (POST), DeleteRegisteredModelAlias (DELETE)


def protected_aliases() -> frozenset[str]:
    from flows.gates import load_rules

    return frozenset({load_rules(ROOT / "mlflow/registry.yaml").champion})


def auth_server_env(team, base: dict[str, str]) -> dict[str, str]:
    """The MLflow server's environment with basic auth on: a config (mode 600, no password in it) whose
    users live in database mlflow_auth and whose authentication function is ours (the champion rule)."""
    user, password = base.get("MLFLOW_TRACKING_USERNAME"), base.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise SystemExit("--auth needs MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (the admin)")
    config = team.state / "basic_auth.ini"
    config.touch(mode=0o600)
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = {team.db_uri('mlflow_auth')}\n"
                      f"admin_username = {user}\n"
                      f"authorization_function = {AUTH_FUNCTION}\n", encoding="utf-8")
    return dict(base, MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_AUTH_ADMIN_PASSWORD=password,
                MLFLOW_FLASK_SERVER_SECRET_KEY=base.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secrets.token_hex(32))


def _alias_request() -> tuple[str, str] | None:
    """(registered model, alias) when this request sets or deletes an alias, else None."""
    from flask import request

    if not request.path.endswith(ALIAS_ROUTE) or request.method not in ("POST", "DELETE"):
        return None
    params = dict(request.args) | (request.get_json(silent=True) or {})
    return str(params.get("name", "")), str(params.get("alias", ""))


def authenticate_and_guard_champion():
    """MLflow's basic-auth check, then the champion rule: a request moving or deleting a protected alias
    from a user who is neither admin nor MANAGE on the model gets 403. Runs in the server (Flask)."""
    from flask import Response, g
    from mlflow.exceptions import MlflowException
    from mlflow.server import auth
    from werkzeug.datastructures import Authorization

    authorization = auth.authenticate_request_basic_auth()
    target = _alias_request()
    # re-entered below: MLflow's permission lookup authenticates the request again
    if not isinstance(authorization, Authorization) or target is None or g.get("vr_guarding"):
        return authorization
    name, alias = target
    if alias not in protected_aliases():
        return authorization
    g.vr_guarding = True
    try:
        allowed = (auth.store.get_user(authorization.username).is_admin
                   or auth._get_registered_model_permission(name).can_manage)
    except MlflowException:  # no such model: nothing to manage
        allowed = False
    finally:
        g.vr_guarding = False
    if allowed:
        return authorization
    message = (f"Permission denied: user {authorization.username!r} may not set or delete alias {alias!r} of "
               f"registered model {name!r} (needs MANAGE on it, or admin)")
    # MLflow's error body, so clients raise RestException(PERMISSION_DENIED) with this message
    return Response(json.dumps({"error_code": "PERMISSION_DENIED", "message": message}), status=403,
                    mimetype="application/json")


def _upsert_user(client, username: str, password: str) -> str:
    from mlflow.exceptions import RestException

    try:
        client.get_user(username)
    except RestException:
        client.create_user(username, password)
        return "created"
    client.update_user_password(username, password)
    return "updated"


def _grant(client, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    from mlflow.exceptions import RestException

    try:
        client.grant_user_permission(username, resource_type, resource_id, permission)
    except RestException:  # already granted (maybe another level): replace it
        client.revoke_user_permission(username, resource_type, resource_id)
        client.grant_user_permission(username, resource_type, resource_id, permission)


def create_users(tracking_uri: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """As the admin (MLFLOW_TRACKING_USERNAME/PASSWORD in the environment): the registered model and the
    pipeline's experiment (owned by the admin), the registrar (EDIT on both) and the reader (READ on
    both), each only when its VR_*_USERNAME and VR_*_PASSWORD are set. Returns user -> created/updated."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    from flows.gates import load_rules
    from videoreasoner.core.tracking import EXPERIMENT

    env = os.environ if env is None else env
    model = load_rules(ROOT / "mlflow/registry.yaml").model_name
    mlflow.set_tracking_uri(tracking_uri)
    tracking, users = MlflowClient(tracking_uri), AuthServiceClient(tracking_uri)
    if not tracking.search_registered_models(f"name = '{model}'"):
        tracking.create_registered_model(model)
    experiment = tracking.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else tracking.create_experiment(EXPERIMENT)
    done: dict[str, str] = {}
    for role, permission in (("REGISTRAR", "EDIT"), ("READER", "READ")):
        username, password = env.get(f"VR_{role}_USERNAME"), env.get(f"VR_{role}_PASSWORD")
        if not username or not password:
            continue
        done[username] = _upsert_user(users, username, password)
        _grant(users, username, "registered_model", model, permission)
        _grant(users, username, "experiment", experiment_id, permission)
    return done
