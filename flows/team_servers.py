"""Team mode: PostgreSQL, the MLflow tracking server and the Prefect server, brought up and down as one.

  vr servers up [--auth]   PostgreSQL cluster in <state>/pg (databases mlflow, prefect, mlflow_auth),
                           MLflow on PostgreSQL with a proxied artifact store (<state>/artifacts, clients
                           up- and download through the server), Prefect server on PostgreSQL; waits until
                           each answers its health check, then prints the exports. Idempotent: what runs
                           and answers is left alone, what is down is started.
  vr servers down          stops all three (idempotent).
  vr servers restart [mlflow|prefect]
                           stops that server (both when none is named) and brings it up again, for an upgrade
                           or a changed setting; an MLflow last started with --auth keeps it. Clients ride the
                           outage out: a stage's or the flow's MLflow calls retry for minutes
                           (MLFLOW_HTTP_REQUEST_MAX_RETRIES), Prefect's client about a minute
                           (PREFECT_CLIENT_MAX_RETRIES; the nightly deployment's flow runs set 7, about
                           four); raise these for a longer maintenance.
  vr servers status        each service: pid, alive, healthy.

Everything comes from the environment (defaults in brackets); nothing binds beyond VR_SERVERS_HOST:
  VR_SERVERS_DIR [<repo>/.servers]   state: pg/ (cluster), artifacts/, logs/*.log, *.pid, prefect/ (home)
  VR_SERVERS_HOST [127.0.0.1]        the address MLflow and Prefect listen on (a worker on another machine
                                     needs one it reaches); PostgreSQL listens on 127.0.0.1 only
  VR_PG_PORT [55432]  VR_MLFLOW_PORT [5000]  VR_PREFECT_PORT [4200]
  VR_PG_USER [vr]                    superuser of the cluster, owner of the databases
  VR_PG_PASSWORD                     its password; unset: one is made on the first `up` and kept in
                                     <state>/pg_password (mode 600). It reaches the servers only as
                                     PGPASSWORD in their environment, never inside a URI or a file they read
  VR_PG_BIN                          PostgreSQL's bin folder [the newest /usr/lib/postgresql/*/bin, or PATH]
  VR_PG_OS_USER [postgres]           the unprivileged account PostgreSQL runs as when `up` runs as root
                                     (PostgreSQL refuses root); <state> must be reachable by it
  --auth / VR_MLFLOW_AUTH=1          MLflow's basic-auth app, admin MLFLOW_TRACKING_USERNAME/PASSWORD,
                                     users in database mlflow_auth, `champion` guarded (flows/team_auth.py)
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

SERVICES = ("mlflow", "prefect")  # started as processes of their own; postgres is pg_ctl's
HEALTH_TIMEOUT_S = 240.0  # MLflow's and Prefect's first start migrate their schemas: ~1 min on 2 busy cores
DATABASES = ("mlflow", "prefect", "mlflow_auth")
PG_HOST = "127.0.0.1"  # only MLflow and Prefect, on this machine, talk to the database: never exposed


class ServerError(RuntimeError):
    """A server did not start or answer; the message carries its log's tail."""


@dataclass(frozen=True)
class Team:
    """Where and how the team servers run (see the module docstring for the variables)."""
    state: Path
    host: str = "127.0.0.1"
    pg_port: int = 55432
    mlflow_port: int = 5000
    prefect_port: int = 4200
    pg_user: str = "vr"
    pg_bin: Path | None = None
    os_user: str = "postgres"
    auth: bool = False

    @classmethod
    def from_env(cls, repo: Path, env: dict[str, str] | None = None, auth: bool = False) -> "Team":
        env = os.environ if env is None else env
        return cls(state=Path(env.get("VR_SERVERS_DIR") or repo / ".servers").resolve(),
                   host=env.get("VR_SERVERS_HOST", "127.0.0.1"), pg_port=int(env.get("VR_PG_PORT", 55432)),
                   mlflow_port=int(env.get("VR_MLFLOW_PORT", 5000)),
                   prefect_port=int(env.get("VR_PREFECT_PORT", 4200)), pg_user=env.get("VR_PG_USER", "vr"),
                   pg_bin=Path(env["VR_PG_BIN"]) if env.get("VR_PG_BIN") else None,
                   os_user=env.get("VR_PG_OS_USER", "postgres"),
                   auth=auth or env.get("VR_MLFLOW_AUTH", "") in ("1", "true", "yes"))

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    def db_uri(self, database: str, driver: str = "postgresql") -> str:
        """A SQLAlchemy URI without the password (libpq and asyncpg read PGPASSWORD)."""
        return f"{driver}://{self.pg_user}@{PG_HOST}:{self.pg_port}/{database}"

    def log(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"

    @property
    def auth_marker(self) -> Path:
        """Whether MLflow was last started with basic auth ("1") or without ("0")."""
        return self.state / "mlflow_auth"

    def pidfile(self, name: str) -> Path:
        return self.state / f"{name}.pid"


def pg_bin(team: Team) -> Path:
    """The folder holding initdb and pg_ctl: VR_PG_BIN, else Debian's newest, else the PATH's."""
    if team.pg_bin:
        if not (team.pg_bin / "initdb").exists():
            raise ServerError(f"VR_PG_BIN={team.pg_bin} holds no initdb")
        return team.pg_bin
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    raise ServerError("PostgreSQL not found: no /usr/lib/postgresql/*/bin/initdb and no initdb on PATH. "
                      "Install Debian's package (`apt-get install postgresql`) or set VR_PG_BIN")


def pg_password(team: Team) -> str:
    """VR_PG_PASSWORD, else the one kept in <state>/pg_password (made on first use, mode 600)."""
    if os.environ.get("VR_PG_PASSWORD"):
        return os.environ["VR_PG_PASSWORD"]
    path = team.state / "pg_password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def _as_pg_user(team: Team, cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as VR_PG_OS_USER (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(team.os_user)
    except KeyError:
        raise ServerError(f"running as root, PostgreSQL needs an unprivileged account: no user {team.os_user!r} "
                          "(Debian's postgresql package creates `postgres`; or set VR_PG_OS_USER)") from None
    return ["setpriv", f"--reuid={team.os_user}", f"--regid={team.os_user}", "--init-groups", *cmd]


def _give_to_pg_user(team: Team, path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(team.os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise ServerError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}"
                          f"{done.stderr[-2000:]}")
    return done.stdout


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def postgres_up(team: Team) -> None:
    """initdb on first use (scram passwords; TCP on PG_HOST only, socket in <state>/run), then pg_ctl start."""
    data, run = team.state / "pg", team.state / "run"
    bin_dir = pg_bin(team)
    for folder in (team.state, team.state / "logs", run):
        folder.mkdir(parents=True, exist_ok=True)
    for folder in (run, team.state / "logs"):
        _give_to_pg_user(team, folder)
    team.state.chmod(0o755)  # the PostgreSQL account must reach pg/, run/ and logs/ (secrets stay mode 600)
    if subprocess.run(_as_pg_user(team, ["test", "-w", str(run)])).returncode != 0:
        raise ServerError(f"the PostgreSQL account {team.os_user!r} cannot reach {run} (a folder above it is closed "
                          "to other users, e.g. mode 700): set VR_SERVERS_DIR to a folder it can reach")
    if not (data / "PG_VERSION").exists():
        data.mkdir(mode=0o700, exist_ok=True)
        _give_to_pg_user(team, data)
        pwfile = run / "initdb.pw"
        pwfile.write_text(pg_password(team), encoding="utf-8")
        pwfile.chmod(0o600)
        _give_to_pg_user(team, pwfile)
        try:
            _run(_as_pg_user(team, [str(bin_dir / "initdb"), "-D", str(data), "-U", team.pg_user,
                                    f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8", "--no-sync"]),
                 f"initdb of {data}")
        finally:
            pwfile.unlink(missing_ok=True)
    if postgres_running(team):
        return
    log = team.log("postgres")
    log.touch()
    _give_to_pg_user(team, log)
    options = f"-c listen_addresses={PG_HOST} -p {team.pg_port} -k {run}"
    try:
        _run(_as_pg_user(team, [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                                "-w", "-t", "120", "start"]), "starting PostgreSQL")
    except ServerError as exc:
        raise ServerError(f"{exc}\n--- {log} (tail) ---\n{_tail(log)}") from None


def postgres_running(team: Team) -> bool:
    data = team.state / "pg"
    if not (data / "PG_VERSION").exists():
        return False
    done = subprocess.run(_as_pg_user(team, [str(pg_bin(team) / "pg_ctl"), "-D", str(data), "status"]),
                          capture_output=True, text=True)
    return done.returncode == 0


def create_databases(team: Team) -> None:
    """The databases MLflow, its auth app and Prefect keep their schemas in (created once)."""
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=team.pg_port, user=team.pg_user, password=pg_password(team),
                            dbname="postgres", connect_timeout=10)
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            existing = {row[0] for row in cur.fetchall()}
            for name in DATABASES:
                if name not in existing:
                    cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def _pid(team: Team, name: str) -> int | None:
    """The pid in <state>/<name>.pid when that process is alive."""
    try:
        pid = int(team.pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None
    _reap(pid)  # a server this process started and that exited is a zombie until reaped: not alive
    try:
        os.kill(pid, 0)
        return pid
    except OSError:
        return None


def healthy(team: Team, name: str, timeout_s: float = 3.0) -> bool:
    """MLflow's /health, Prefect's /api/health answer 200."""
    import urllib.request

    url = f"{team.mlflow_url}/health" if name == "mlflow" else f"{team.prefect_api_url}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return answer.status == 200
    except OSError:
        return False


def server_env(team: Team, base: dict[str, str] | None = None) -> dict[str, str]:
    """What MLflow and Prefect are started with: the database password as PGPASSWORD only."""
    env = dict(os.environ if base is None else base)
    repo_root = str(Path(__file__).resolve().parents[1])  # flows.team_auth must import in the server
    env.update(PGPASSWORD=pg_password(team), MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               PYTHONPATH=os.pathsep.join(filter(None, [repo_root, env.get("PYTHONPATH")])),
               PREFECT_HOME=str(team.state / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_API_DATABASE_CONNECTION_URL=team.db_uri("prefect", "postgresql+asyncpg"),
               MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    env.pop("PREFECT_API_URL", None)  # the server itself must not talk to another one
    return env


def mlflow_command(team: Team) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", team.host, "--port", str(team.mlflow_port),
           "--workers", "1", "--backend-store-uri", team.db_uri("mlflow"),
           "--serve-artifacts", "--artifacts-destination", str(team.state / "artifacts")]
    return cmd + (["--app-name", "basic-auth"] if team.auth else [])


def prefect_command(team: Team) -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start", "--host", team.host,
            "--port", str(team.prefect_port)]


def _start(team: Team, name: str, cmd: list[str], env: dict[str, str]) -> None:
    """Start `cmd` in a session of its own (so `down` ends its workers too); pid to <state>/<name>.pid."""
    with open(team.log(name), "ab") as log:
        proc = subprocess.Popen(cmd, cwd=team.state, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    team.pidfile(name).write_text(str(proc.pid))


def wait_healthy(team: Team, name: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not healthy(team, name):
        if _pid(team, name) is None:
            raise ServerError(f"{name} exited while starting; --- {team.log(name)} (tail) ---\n{_tail(team.log(name))}")
        if time.monotonic() > deadline:
            raise ServerError(f"{name} did not answer its health check within {timeout_s:.0f} s; "
                              f"--- {team.log(name)} (tail) ---\n{_tail(team.log(name))}")
        time.sleep(0.5)


def up(team: Team, env: dict[str, str] | None = None) -> None:
    """PostgreSQL, its databases, then MLflow and Prefect (started together, waited for in turn)."""
    from flows.team_auth import auth_server_env

    postgres_up(team)
    create_databases(team)
    (team.state / "artifacts").mkdir(exist_ok=True)
    base = server_env(team, env)
    started = []
    for name in SERVICES:
        if _pid(team, name) and healthy(team, name):
            continue
        stop_service(team, name)  # a stale or hung one
        service_env = auth_server_env(team, base) if name == "mlflow" and team.auth else base
        _start(team, name, mlflow_command(team) if name == "mlflow" else prefect_command(team), service_env)
        if name == "mlflow":
            team.auth_marker.write_text("1" if team.auth else "0")
        started.append(name)
    for name in started:
        wait_healthy(team, name)


def stop_service(team: Team, name: str, grace_s: float = 20.0) -> bool:
    """SIGTERM to the service's process group, SIGKILL after `grace_s`; False when nothing ran."""
    pid = _pid(team, name)
    team.pidfile(name).unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            os.killpg(pid, 0)
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    """A server this process started is its child: collect it so it leaves no zombie behind."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def restart(team: Team, names: tuple[str, ...] = SERVICES, env: dict[str, str] | None = None) -> Team:
    """Stop the named servers, then `up`: they start again on the same database, ports and settings.
    An MLflow last started with basic auth comes back with it even without --auth: a restart never
    opens the registry to everyone. Returns the settings it restarted with."""
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise ServerError(f"no team server named {', '.join(unknown)}: restart one of {', '.join(SERVICES)}")
    if not team.auth and team.auth_marker.is_file() and team.auth_marker.read_text() == "1":
        team = replace(team, auth=True)
    for name in names:
        stop_service(team, name)
    up(team, env)
    return team


def down(team: Team) -> list[str]:
    """Stop MLflow, Prefect and PostgreSQL; returns what was running. Idempotent."""
    stopped = [name for name in SERVICES if stop_service(team, name)]
    if postgres_running(team):
        _run(_as_pg_user(team, [str(pg_bin(team) / "pg_ctl"), "-D", str(team.state / "pg"), "-m", "fast",
                                "-w", "stop"]), "stopping PostgreSQL")
        stopped.append("postgres")
    return stopped


def status(team: Team) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {"postgres": {"running": postgres_running(team),
                                                       "address": f"{PG_HOST}:{team.pg_port}"}}
    rows["mlflow"] = {"pid": _pid(team, "mlflow"), "healthy": healthy(team, "mlflow"), "address": team.mlflow_url}
    rows["prefect"] = {"pid": _pid(team, "prefect"), "healthy": healthy(team, "prefect"),
                       "address": team.prefect_api_url}
    return rows


def exports(team: Team) -> str:
    """Shell lines that point the pipeline, `vr registry` and a worker at the team servers."""
    return f"export MLFLOW_TRACKING_URI={team.mlflow_url}\nexport PREFECT_API_URL={team.prefect_api_url}"
