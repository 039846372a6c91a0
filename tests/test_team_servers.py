"""`vr servers up|down|status` (flows/team_servers.py): settings from the environment, the command lines
and environments the servers get (password only as PGPASSWORD, never in a URI or an argument), clear
errors, and on the session's live stack: healthy, listening on 127.0.0.1 only, `up` idempotent."""
import logging
import os
from pathlib import Path

import pytest

from flows import servers, team_servers
from flows.team_auth import AUTH_FUNCTION, auth_server_env, protected_aliases
from flows.team_servers import ServerError, Team

SENTINEL = "pg-secret-4d1e"


def test_settings_come_from_the_environment_with_local_defaults(tmp_path):
    team = Team.from_env(tmp_path, {})
    assert (team.state, team.host, team.pg_port, team.mlflow_port, team.prefect_port, team.auth) == (
        (tmp_path / ".servers").resolve(), "127.0.0.1", 55432, 5000, 4200, False)
    team = Team.from_env(tmp_path, {"VR_SERVERS_DIR": str(tmp_path / "s"), "VR_SERVERS_HOST": "10.0.0.5",
                                    "VR_PG_PORT": "6000", "VR_MLFLOW_PORT": "6001", "VR_PREFECT_PORT": "6002",
                                    "VR_PG_USER": "team", "VR_MLFLOW_AUTH": "1"})
    assert (team.host, team.pg_port, team.mlflow_port, team.prefect_port, team.pg_user, team.auth) == (
        "10.0.0.5", 6000, 6001, 6002, "team", True)
    cmd = team_servers.mlflow_command(team)  # the servers face the configured address, the database never does
    assert cmd[cmd.index("--host") + 1] == "10.0.0.5" and team_servers.prefect_command(team)[-3] == "10.0.0.5"
    assert team.db_uri("mlflow") == "postgresql://team@127.0.0.1:6000/mlflow"
    assert team_servers.exports(team) == ("export MLFLOW_TRACKING_URI=http://10.0.0.5:6001\n"
                                          "export PREFECT_API_URL=http://10.0.0.5:6002/api")


def test_the_database_password_reaches_the_servers_only_as_pgpassword(tmp_path, monkeypatch):
    monkeypatch.setenv("VR_PG_PASSWORD", SENTINEL)
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere/api")
    team = Team(state=tmp_path, pg_port=6000, mlflow_port=6001)
    env = team_servers.server_env(team)
    assert env["PGPASSWORD"] == SENTINEL and "PREFECT_API_URL" not in env
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://vr@127.0.0.1:6000/prefect"
    cmd = team_servers.mlflow_command(team)
    assert SENTINEL not in " ".join(cmd)
    assert cmd[cmd.index("--backend-store-uri") + 1] == "postgresql://vr@127.0.0.1:6000/mlflow"
    assert "--serve-artifacts" in cmd and cmd[cmd.index("--artifacts-destination") + 1] == str(tmp_path / "artifacts")
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "--app-name" not in cmd
    assert team_servers.prefect_command(team)[-4:] == ["--host", "127.0.0.1", "--port", "4200"]


def test_a_generated_password_is_kept_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.delenv("VR_PG_PASSWORD", raising=False)
    team = Team(state=tmp_path / "state")
    first = team_servers.pg_password(team)
    assert len(first) >= 24 and team_servers.pg_password(team) == first
    assert (tmp_path / "state/pg_password").stat().st_mode & 0o077 == 0


def test_the_auth_config_names_our_rule_and_holds_no_password(tmp_path):
    team = Team(state=tmp_path, pg_port=6000, auth=True)
    env = auth_server_env(team, {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": SENTINEL})
    config = Path(env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert SENTINEL not in config and f"authorization_function = {AUTH_FUNCTION}" in config
    assert "database_uri = postgresql://vr@127.0.0.1:6000/mlflow_auth" in config
    assert Path(env["MLFLOW_AUTH_CONFIG_PATH"]).stat().st_mode & 0o077 == 0
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == SENTINEL and protected_aliases() == {"champion"}
    with pytest.raises(SystemExit, match="MLFLOW_TRACKING_PASSWORD"):
        auth_server_env(team, {"MLFLOW_TRACKING_USERNAME": "admin"})


def test_up_without_postgresql_fails_naming_what_is_missing(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("VR_SERVERS_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VR_PG_BIN", str(tmp_path / "no-postgres"))
    # a handler an earlier test's command left on the `flows` logger writes to that test's captured stderr
    monkeypatch.setattr(logging.getLogger("flows"), "handlers", [])
    assert servers.main(["--repo", str(tmp_path), "up"]) == 1
    assert f"VR_PG_BIN={tmp_path / 'no-postgres'} holds no initdb" in capfd.readouterr().err


def test_restart_of_an_unknown_server_is_refused_before_anything_stops(tmp_path, monkeypatch):
    stopped = []
    monkeypatch.setattr(team_servers, "stop_service", lambda team, name: stopped.append(name))
    with pytest.raises(ServerError, match="no team server named postgres: restart one of mlflow, prefect"):
        team_servers.restart(Team(state=tmp_path), ("mlflow", "postgres"))
    assert stopped == []


def test_restart_keeps_basic_auth_when_mlflow_last_ran_with_it(tmp_path, monkeypatch):
    brought_up = []
    monkeypatch.setattr(team_servers, "stop_service", lambda team, name: None)
    monkeypatch.setattr(team_servers, "up", lambda team, env=None: brought_up.append(team.auth))
    team = Team(state=tmp_path)  # `vr servers restart` without --auth
    assert team_servers.restart(team).auth is False  # no marker: a stack never started with auth
    team.auth_marker.write_text("1")  # what `up --auth` leaves
    assert team_servers.restart(team, ("mlflow",)).auth is True
    team.auth_marker.write_text("0")
    assert team_servers.restart(team).auth is False and brought_up == [False, True, False]


def test_down_with_nothing_running_is_a_no_op(tmp_path):
    assert team_servers.down(Team(state=tmp_path)) == []
    assert team_servers.down(Team(state=tmp_path)) == []


def test_a_server_that_dies_while_starting_is_reported_with_its_log(tmp_path):
    import sys

    team = Team(state=tmp_path, mlflow_port=1)  # nothing answers there
    (tmp_path / "logs").mkdir()
    team_servers._start(team, "mlflow", [sys.executable, "-c", "print('schema migration failed: boom')"],
                        dict(os.environ))
    with pytest.raises(ServerError, match=r"mlflow exited while starting(.|\n)*schema migration failed: boom"):
        team_servers.wait_healthy(team, "mlflow", timeout_s=60)


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) in LISTEN state on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.slow
def test_the_stack_is_healthy_local_only_and_up_is_idempotent(team):
    status = team.servers("status").stdout
    assert '"healthy": true' in status and '"running": true' in status
    for key in ("VR_PG_PORT", "VR_MLFLOW_PORT", "VR_PREFECT_PORT"):
        assert listening_addresses(int(team.env[key])) == {"0100007F"}, key  # 127.0.0.1 and nothing else
    assert (team.state / "mlflow_auth").read_text() == "1"  # what a later `restart` keeps
    pids = {name: (team.state / f"{name}.pid").read_text() for name in team_servers.SERVICES}
    team.servers("up", "--auth")  # everything answers: nothing is restarted
    assert pids == {name: (team.state / f"{name}.pid").read_text() for name in team_servers.SERVICES}
    team.servers("restart", "prefect", "--auth")  # that one server only, healthy again before it returns
    assert (team.state / "mlflow.pid").read_text() == pids["mlflow"]
    assert (team.state / "prefect.pid").read_text() != pids["prefect"]
    assert team_servers.healthy(Team.from_env(Path(team.env["VR_SERVERS_DIR"]), team.env), "prefect")


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user PostgreSQL runs as that user itself")
def test_a_state_dir_the_postgresql_account_cannot_reach_is_refused_clearly(tmp_path):
    from tests.helpers_team import require_postgres

    require_postgres()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(ServerError, match="cannot reach .*set VR_SERVERS_DIR"):
        team_servers.postgres_up(Team(state=closed / "state"))
    assert not (closed / "state/pg").exists()
