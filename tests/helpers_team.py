"""The team stack for tests: `vr servers up --auth` on free ports in a throw-away state dir, its three
accounts (admin, registrar, reader) from `vr servers users`, and `vr servers down` at the end. One stack
per test session (tests/conftest.py: `team`). PostgreSQL missing fails the test with what to install,
unless VR_SKIP_TEAM_TESTS=1 says to skip the team tests on purpose."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers_ranks import free_port

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = {"admin": "admin-pw-7f3a9c", "registrar": "registrar-pw-51be02", "reader": "reader-pw-c0ffee"}


@dataclass(frozen=True)
class TeamStack:
    state: Path
    env: dict[str, str]  # VR_* settings and the admin's MLflow credentials
    mlflow_url: str
    prefect_api_url: str

    def as_user(self, role: str) -> dict[str, str]:
        """MLflow client variables of one account (admin, registrar, reader)."""
        return {"MLFLOW_TRACKING_URI": self.mlflow_url, "MLFLOW_TRACKING_USERNAME": role,
                "MLFLOW_TRACKING_PASSWORD": ACCOUNTS[role]}

    def servers(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
        """`vr servers ARGS` against this stack; fails the test with its output when it fails."""
        done = subprocess.run([sys.executable, "-m", "flows.servers", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"vr servers {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done


def require_postgres() -> None:
    """Fail (not skip) when PostgreSQL is missing; skip only when VR_SKIP_TEAM_TESTS=1 asks for it."""
    if os.environ.get("VR_SKIP_TEAM_TESTS") == "1":
        pytest.skip("VR_SKIP_TEAM_TESTS=1: team-mode tests skipped on purpose")
    from flows.team_servers import ServerError, Team, pg_bin

    try:
        pg_bin(Team.from_env(ROOT))
    except ServerError as exc:
        pytest.fail(f"team-mode tests need PostgreSQL: {exc}. (.ci/run installs it; set VR_SKIP_TEAM_TESTS=1 "
                    "to skip these tests on purpose)", pytrace=False)


@contextlib.contextmanager
def team_stack():
    require_postgres()
    # not pytest's tmp_path: its folders are mode 700, and the PostgreSQL account must reach the cluster
    base = Path(tempfile.mkdtemp(prefix="vr-team-"))
    base.chmod(0o755)
    env = dict(os.environ, VR_SERVERS_DIR=str(base / "state"), VR_SERVERS_HOST="127.0.0.1",
               VR_PG_PORT=str(free_port()), VR_MLFLOW_PORT=str(free_port()), VR_PREFECT_PORT=str(free_port()),
               VR_PG_PASSWORD="pg-pw-team-tests", PYTHONPATH=str(ROOT),
               MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=ACCOUNTS["admin"],
               VR_REGISTRAR_USERNAME="registrar", VR_REGISTRAR_PASSWORD=ACCOUNTS["registrar"],
               VR_READER_USERNAME="reader", VR_READER_PASSWORD=ACCOUNTS["reader"])
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "VR_PG_BIN"):
        env.pop(key, None)
    stack = TeamStack(base / "state", env, f"http://127.0.0.1:{env['VR_MLFLOW_PORT']}",
                      f"http://127.0.0.1:{env['VR_PREFECT_PORT']}/api")
    try:
        exports = stack.servers("up", "--auth").stdout
        assert f"export MLFLOW_TRACKING_URI={stack.mlflow_url}" in exports, exports
        stack.env["MLFLOW_TRACKING_URI"] = stack.mlflow_url
        stack.servers("users")
        yield stack
    finally:
        subprocess.run([sys.executable, "-m", "flows.servers", "down"], cwd=ROOT, env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(base, ignore_errors=True)
