"""Registry faults on a real MLflow server and on a sqlite store: a server down from the start, one that
blips, one lost or killed during registration. Bounded retries, then RegistryUnavailable naming the
server without its credentials, and never a version that counts as registered without being complete.
(The rest of the fault suite: tests/test_faults.py.)
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))  # before Prefect loads

from flows import aliases, registration, registry_tracking, retries, version_tags  # noqa: E402
from flows.gates import Gate, Rules  # noqa: E402
from tests.helpers_ranks import free_port  # noqa: E402

RULES = {"gates": (Gate("mc_accuracy", 0.0),)}
LINEAGE = {"git_commit": "abc", "pipeline_run_id": "p1", "dvc_lock_hash": "h1"}


@pytest.fixture()
def fast_retries(monkeypatch):
    """MLflow's own per-request retries off, ours short: the whole give-up takes well under a second."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setattr(retries, "RETRY_DELAYS_S", (0.05, 0.05))


def _artifacts(root: Path) -> tuple[Path, Path]:
    model = root / "models/rl"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text("{}")
    (root / "policy.json").write_text(json.dumps({"strategy": "greedy"}))
    return model, root / "policy.json"


def _register(rules: Rules, root: Path, **metrics) -> str:
    model, policy = _artifacts(root)
    return registration.register(rules, model, policy, metrics or {"mc_accuracy": 0.5}, tags=LINEAGE,
                             predictor_factory=lambda *a: (lambda record, video: "<answer>A</answer>"))


def test_server_down_from_the_start_fails_fast_naming_it_without_credentials(tmp_path, fast_retries, monkeypatch):
    import mlflow

    port = free_port()  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://vr-user:s3cret@127.0.0.1:{port}")
    with pytest.raises(retries.RegistryUnavailable) as info:
        registry_tracking.tracking_setup(tmp_path)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message and "s3cret" not in message and "3 attempts" in message
    t0 = time.monotonic()
    with pytest.raises(retries.RegistryUnavailable, match=f"127.0.0.1:{port}.*looking up registered model") as info:
        _register(Rules("down-model", **RULES), tmp_path)
    assert "s3cret" not in str(info.value) and time.monotonic() - t0 < 10
    assert mlflow.active_run() is None


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    """One sqlite store for the module (creating one costs seconds); each test uses its own model name."""
    root = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    registry_tracking.tracking_setup(root)
    yield root
    mp.undo()


def _blip(monkeypatch, method: str, failures: int | None) -> list[int]:
    """MlflowClient.<method> fails like an unreachable server `failures` times (None: always)."""
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient

    real, calls = getattr(MlflowClient, method), []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if failures is None or len(calls) <= failures:
            raise MlflowException("API request to http://127.0.0.1:1/api/2.0/mlflow/x failed with exception "
                                  "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded "
                                  "(Caused by NewConnectionError: [Errno 111] Connection refused)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, method, flaky)
    return calls


def test_a_blip_is_retried_and_the_registration_completes(sqlite_store, fast_retries, monkeypatch):
    rules = Rules("blip-model", **RULES)
    calls = _blip(monkeypatch, "set_registered_model_alias", failures=2)
    version = _register(rules, sqlite_store)
    assert len(calls) == 3
    assert aliases.alias_version(rules, rules.challenger) == version
    assert aliases.list_versions(rules)[0]["registration"] == version_tags.COMPLETE
    assert aliases.find_version(rules, "dvc_lock_hash", "h1") == version


# what a CI run's MLflow server (PostgreSQL store) answered one of two registrations setting `challenger` at once
ALIAS_RACE = ('BAD_REQUEST: (psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint '
              '"registered_model_alias_pk"\nDETAIL:  Key (workspace, name, alias)=(default, m, challenger) already '
              'exists.\n[SQL: INSERT INTO registered_model_aliases (workspace, name, alias, version) VALUES (...)]')


def test_an_alias_set_racing_another_registration_is_set_again(sqlite_store, fast_retries, monkeypatch, caplog):
    """MLflow's SQL store sets an alias by a read, then an insert: two registrations at once can both read
    "none" and the later insert fails on the key. Setting it again updates the row; only that 400 is retried."""
    from mlflow.exceptions import RestException

    from mlflow import MlflowClient

    real, calls = MlflowClient.set_registered_model_alias, []

    def racing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RestException({"error_code": "BAD_REQUEST", "message": ALIAS_RACE})
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", racing)
    rules = Rules("race-model", **RULES)
    with caplog.at_level("WARNING", logger="flows.registry"):
        version = _register(rules, sqlite_store)
    assert len(calls) == 2 and aliases.alias_version(rules, rules.challenger) == version
    assert aliases.list_versions(rules)[0]["registration"] == version_tags.COMPLETE
    assert any("raced another client while setting alias 'challenger'" in r.getMessage() for r in caplog.records)
    assert not retries.is_transient(RestException({"error_code": "BAD_REQUEST", "message": "duplicate key value "
                                                   "violates unique constraint \"model_versions_pk\""}))


def test_server_lost_after_the_version_exists_deletes_it_and_gives_challenger_back(sqlite_store, fast_retries,
                                                                                   monkeypatch):
    rules = Rules("lost-model", **RULES)
    v1 = _register(rules, sqlite_store)
    _blip(monkeypatch, "set_model_version_tag", failures=None)  # every tagging call fails from now on
    with pytest.raises(retries.RegistryUnavailable, match=r"tagging lost-model version 2.*\n.*version 2 deleted"):
        _register(rules, sqlite_store, mc_accuracy=0.9)
    monkeypatch.undo()
    assert [r["version"] for r in aliases.list_versions(rules)] == [v1]
    assert aliases.alias_version(rules, rules.challenger) == v1


def test_alias_lookup_on_a_dead_server_is_an_error_not_none(sqlite_store, fast_retries, monkeypatch):
    """None would read as 'no champion yet' and let any version through the gates."""
    rules = Rules("lost-model", **RULES)
    _blip(monkeypatch, "get_model_version_by_alias", failures=None)
    with pytest.raises(retries.RegistryUnavailable, match="reading alias 'champion'"):
        aliases.promote(rules, "1")


@pytest.fixture()
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 (sqlite store and artifacts in tmp_path, no job runner: it
    would start seven worker processes); yields (uri, db path, kill). Its process group dies at the end."""
    import urllib.request

    port, db = free_port(), tmp_path / "server.db"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(tmp_path / "artifacts")]
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})

    def kill():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    try:
        deadline = time.monotonic() + 150
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not start within 150 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", db, kill
    finally:
        kill()


@pytest.mark.slow
def test_server_killed_during_registration(mlflow_server, tmp_path, fast_retries, monkeypatch):
    """The server dies right after the version is created: registration retries, gives up with an error
    naming the server; the version it could not delete stays pending, which nothing treats as registered,
    and the next registration on the restored store deletes it."""
    from mlflow import MlflowClient

    uri, db, kill = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    registry_tracking.tracking_setup(tmp_path)
    rules = Rules("killed-model", **RULES)
    real_tag = registration._tag_version

    def server_dies(*args, **kwargs):
        kill()
        return real_tag(*args, **kwargs)

    monkeypatch.setattr(registration, "_tag_version", server_dies)
    with pytest.raises(retries.RegistryUnavailable) as info:
        _register(rules, tmp_path)
    message = str(info.value)
    assert uri in message and "tagging killed-model version 1" in message and "stay tagged registration=pending" in message

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")  # the server's own store, read directly
    registry_tracking.tracking_setup(tmp_path)
    (mv,) = MlflowClient().search_model_versions("name = 'killed-model'")
    assert mv.tags["registration"] == "pending" and not MlflowClient().get_registered_model("killed-model").aliases
    assert aliases.find_version(rules, "dvc_lock_hash", LINEAGE["dvc_lock_hash"]) is None
    with pytest.raises(ValueError, match="registration never completed"):
        aliases.promote(rules, "1")
    assert registration.sweep_pending(rules) == []  # younger than STALE_PENDING_S: maybe a live registration
    assert registration.sweep_pending(rules, older_than_s=0) == ["1"]
    assert MlflowClient().search_model_versions("name = 'killed-model'") == []


def test_flow_reports_the_registry_error_not_the_bookkeeping_after_it(tmp_path, sqlite_store, fast_retries,
                                                                     monkeypatch):
    """With the server gone, closing the parent run fails too; that must not hide the registry's error
    (nor, with MLflow's default retries, keep the flow waiting minutes per tag for it)."""
    import flows.pipeline as flow_module

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # no stages: straight to registration

    def server_dies(repo, tags, parent_run_id):
        _blip(monkeypatch, "set_tag", failures=None)
        raise retries.RegistryUnavailable("MLflow tracking server http://127.0.0.1:1 unreachable while registering")

    monkeypatch.setattr(flow_module, "register_and_promote", server_dies)
    with pytest.raises(retries.RegistryUnavailable, match="while registering"):
        flow_module.pipeline.fn(repo=str(tmp_path))  # the flow body, without Prefect's engine
