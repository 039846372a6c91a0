"""Concurrency and faults on the team MLflow server (PostgreSQL store, proxied artifacts): two
registrations from two workspaces at once give two complete versions, each with its own lineage; the
MLflow server restarted in the middle of a registration is waited for (flows/retries.py) and the
registration completes, leaving no version without its tags and alias."""
import os
import subprocess
import sys
import tempfile
import threading

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))  # before Prefect loads

from flows import aliases, registration, retries, team_servers  # noqa: E402
from flows.gates import Gate, Rules  # noqa: E402
from tests.helpers_team import ROOT  # noqa: E402

pytestmark = pytest.mark.slow


def test_two_workspaces_register_at_once_without_interfering(team, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    env = dict(team.env, **team.as_user("admin"))
    procs = {run_id: subprocess.Popen([sys.executable, str(ROOT / "tests/helpers_team_register.py"),
                                       str(tmp_path / run_id), "team-concurrent", run_id], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for run_id in ("ws-a", "ws-b")}
    versions = {}
    for run_id, proc in procs.items():
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, out[-4000:]
        versions[run_id] = out.rsplit("VERSION ", 1)[1].split()[0]
    assert sorted(versions.values()) == ["1", "2"]

    for key, value in team.as_user("reader").items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(team.mlflow_url)
    for run_id, version in versions.items():
        mv = client.get_model_version("team-concurrent", version)
        assert mv.tags["pipeline_run_id"] == run_id and mv.tags["dvc_lock_hash"] == f"hash-{run_id}"
        assert mv.tags["registration"] == "complete" and mv.tags["run_id"] == mv.run_id
        assert client.get_run(mv.run_id).data.tags["pipeline_run_id"] == run_id  # its own run
    challenger = client.get_registered_model("team-concurrent").aliases["challenger"]
    assert str(challenger) in versions.values()


def test_a_server_restart_during_registration_is_retried_and_completes(team, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    for key, value in team.as_user("admin").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # our retries alone bridge the restart
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.setattr(retries, "RETRY_DELAYS_S", (3.0, 6.0, 12.0, 24.0, 48.0))
    settings = team_servers.Team.from_env(ROOT, team.env, auth=True)
    warnings, real_tag, restarts = [], registration._tag_version, []

    def restart_then_tag(*args, **kwargs):
        if not restarts:  # the version exists, pending; the server goes away before its tags are set
            assert team_servers.stop_service(settings, "mlflow")
            restarts.append(threading.Thread(target=team.servers, args=("up", "--auth")))
            restarts[0].start()
        return real_tag(*args, **kwargs)

    monkeypatch.setattr(registration, "_tag_version", restart_then_tag)
    monkeypatch.setattr(retries.log, "warning", lambda *a: warnings.append(a[0] % a[1:]))
    rules = Rules("team-restart", gates=(Gate("mc_accuracy", 0.0),))
    version = registration.register(rules,
                                    *_stand_in(tmp_path), {"mc_accuracy": 0.5},
                                    tags={"git_commit": "c1", "pipeline_run_id": "restart-1", "dvc_lock_hash": "h1"},
                                    predictor_factory=lambda *a: (lambda record, video: "A"))
    restarts[0].join(timeout=300)
    assert any("unreachable while tagging team-restart version" in w for w in warnings), warnings

    client = MlflowClient(team.mlflow_url)
    (mv,) = client.search_model_versions("name = 'team-restart'")  # one version: nothing half-made beside it
    assert str(mv.version) == version and mv.tags["registration"] == "complete"
    assert mv.tags["metric.mc_accuracy"] == "0.5" and mv.tags["pipeline_run_id"] == "restart-1"
    assert aliases.alias_version(rules, "challenger") == version


def _stand_in(root):
    import json

    (root / "models/rl").mkdir(parents=True)
    (root / "models/rl/config.json").write_text("{}")
    (root / "policy.json").write_text(json.dumps({"strategy": "greedy"}))
    from flows import registry_tracking

    registry_tracking.tracking_setup(root)
    return root / "models/rl", root / "policy.json"
