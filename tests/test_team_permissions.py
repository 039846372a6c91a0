"""Registry permissions on the team MLflow server (basic auth, flows/team_auth.py): the registrar logs runs,
registers versions and sets `challenger` but is refused `champion` (HTTP 403); the reader reads and is
refused every write; the admin moves `champion`; an anonymous client is refused everything (401).
One stack for the session (tests/conftest.py `team`)."""
import json
import os
import tempfile

import pytest
import requests

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))  # before Prefect loads

from flows import aliases, registration, registry_tracking  # noqa: E402
from flows.gates import Gate, Rules, load_rules  # noqa: E402
from tests.helpers_team import ROOT  # noqa: E402

LINEAGE = {"git_commit": "abc", "pipeline_run_id": "perm-1", "dvc_lock_hash": "perm-h1"}
MODEL = load_rules(ROOT / "mlflow/registry.yaml").model_name  # the one the registrar holds EDIT on


def as_user(monkeypatch, team, role: str) -> None:
    for key, value in team.as_user(role).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a refusal is final: no waiting on it


def rules() -> Rules:
    return Rules(MODEL, gates=(Gate("mc_accuracy", 0.0),))


def register_fake(tmp_path, metrics=None) -> str:
    """A version of MODEL from a stand-in model folder and policy (no real weights)."""
    model = tmp_path / "models/rl"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text("{}")
    (tmp_path / "policy.json").write_text(json.dumps({"strategy": "greedy"}))
    registry_tracking.tracking_setup(tmp_path)
    return registration.register(rules(), model, tmp_path / "policy.json", metrics or {"mc_accuracy": 0.5},
                                 tags=LINEAGE, predictor_factory=lambda *a: (lambda record, video: "A"))


@pytest.fixture(scope="module")
def registrar_version(team, tmp_path_factory):
    """One version registered by the registrar (run, artifacts through the proxy, version, tags,
    `challenger`), shared by this module's tests: a registration costs ~20 s on two busy cores."""
    from unittest import mock

    with mock.patch.dict(os.environ, team.as_user("registrar")):
        return register_fake(tmp_path_factory.mktemp("registrar"))


def refused(call, *args) -> str:
    """`call(*args)` is answered 403 (MLflow's own refusals carry a plain-text body, the champion rule's
    MLflow's JSON error: both reach the client as an MlflowException with HTTP status 403)."""
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as info:
        call(*args)
    assert info.value.get_http_status_code() == 403, info.value
    return str(info.value)


@pytest.mark.slow
def test_anonymous_clients_are_refused(team):
    api = f"{team.mlflow_url}/api/2.0/mlflow/registered-models/get?name={MODEL}"
    assert requests.get(api, timeout=30).status_code == 401
    assert requests.get(api, auth=("registrar", "wrong"), timeout=30).status_code == 401
    assert requests.get(api, auth=("reader", team.as_user("reader")["MLFLOW_TRACKING_PASSWORD"]),
                        timeout=30).status_code == 200


@pytest.mark.slow
def test_registrar_registers_and_sets_challenger_but_cannot_move_champion(team, registrar_version, monkeypatch):
    from mlflow import MlflowClient

    as_user(monkeypatch, team, "registrar")
    version = registrar_version
    client = MlflowClient()
    mv = client.get_model_version(MODEL, version)
    assert mv.tags["registration"] == "complete" and mv.tags["dvc_lock_hash"] == LINEAGE["dvc_lock_hash"]
    assert aliases.alias_version(rules(), "challenger") == version
    client.set_registered_model_alias(MODEL, "challenger", version)  # allowed: not a protected alias

    message = refused(client.set_registered_model_alias, MODEL, "champion", version)
    assert "may not set or delete alias 'champion'" in message and "needs MANAGE" in message
    refused(aliases.promote, rules(), version)  # the gated promotion moves champion too: refused as well
    refused(aliases.promote, rules(), version, True)  # and --force
    assert aliases.alias_version(rules(), "champion") != version

    as_user(monkeypatch, team, "admin")
    assert aliases.promote(rules(), version).passed  # the admin moves it
    assert aliases.alias_version(rules(), "champion") == version

    as_user(monkeypatch, team, "registrar")
    refused(client.delete_registered_model_alias, MODEL, "champion")  # nor may it take champion away
    refused(aliases.rollback, rules(), version)
    assert aliases.alias_version(rules(), "champion") == version


@pytest.mark.slow
def test_reader_reads_and_is_refused_every_write(team, registrar_version, monkeypatch):
    from mlflow import MlflowClient
    from videoreasoner.core.tracking import EXPERIMENT

    version = registrar_version
    as_user(monkeypatch, team, "reader")
    client = MlflowClient()
    assert client.get_model_version(MODEL, version).version == version  # reads
    assert aliases.alias_version(rules(), "challenger") is not None
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    refused(client.create_run, experiment_id)
    run_id = client.get_model_version(MODEL, version).run_id
    refused(client.create_model_version, MODEL, f"runs:/{run_id}/model", run_id)
    refused(client.set_model_version_tag, MODEL, version, "note", "x")
    refused(client.set_registered_model_alias, MODEL, "challenger", version)
    refused(client.set_registered_model_alias, MODEL, "champion", version)
    refused(client.delete_model_version, MODEL, version)


@pytest.mark.parametrize("status", [403, 500])
def test_the_flow_step_leaves_a_refused_promotion_to_the_admin(tmp_path, monkeypatch, status):
    """A registrar's pipeline registers, and a 403 on `champion` ends the step with the version challenger
    and the admin's command to run; any other error still fails it."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, PERMISSION_DENIED

    from videoreasoner.core import params

    code = PERMISSION_DENIED if status == 403 else INTERNAL_ERROR

    def refuse(rules, version, force=False):
        raise MlflowException("Permission denied", error_code=code)

    monkeypatch.setattr(registration, "read_ladder_metrics", lambda path, models: ("rl", {"mc_accuracy": 0.5}))
    monkeypatch.setattr(params, "load_params", lambda path: {})
    monkeypatch.setattr(registration, "register", lambda *a, **k: "7")
    monkeypatch.setattr(registration, "promote", refuse)
    monkeypatch.setattr(registration, "alias_version", lambda rules, alias: "3")
    if status != 403:
        with pytest.raises(MlflowException):
            registration.register_workspace(tmp_path, rules(), tags=LINEAGE)
        return
    result = registration.register_workspace(tmp_path, rules(), tags=LINEAGE)
    assert result["version"] == "7" and result["promoted"] is False and result["champion"] == "3"
    assert "vr registry promote 7" in result["decision"] and "HTTP 403" in result["decision"]
