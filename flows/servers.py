"""Servers: the team stack (PostgreSQL, MLflow, Prefect; flows/team_servers.py), and for one person the
MLflow tracking server on the embedded store, the Prefect UI, and the scheduled deployment served in-process.

  vr servers up [--auth]                     team mode: PostgreSQL + MLflow (proxied artifacts) + Prefect
                                             server on 127.0.0.1, waits until healthy, prints the exports
                                             (ports, credentials, state dir: flows/team_servers.py)
  vr servers down | status                   stop all three (idempotent) | pid and health of each
  vr servers restart [mlflow|prefect]        stop one server (both when none is named), bring it up again
                                             (an MLflow last started with --auth keeps it)
  vr servers users                           registrar and reader accounts on the --auth server
                                             (flows/team_auth.py: who may move `champion`)

  vr servers mlflow [--port 5000] [--auth]   MLflow on 127.0.0.1: sqlite backend store mlflow/mlflow.db,
                                             artifacts under mlflow/artifacts/ (the embedded store, served)
  vr servers prefect-ui [--port 4200]        Prefect server + UI on 127.0.0.1 over the flow runs in .prefect/
  vr servers serve [--deployment nightly]    serve infra/prefect.yaml's deployment (its cron schedule) here;
                                             schedules fire only against a running Prefect server:
                                             `vr servers prefect-ui` + PREFECT_API_URL=http://127.0.0.1:4200/api

With --auth, MLflow runs its basic-auth app; the admin account is MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD (the variables MLflow clients send too) and MLFLOW_FLASK_SERVER_SECRET_KEY
signs sessions (a random one is made when unset). Users live in mlflow/basic_auth.db; the admin
password is only set when that file is first created. To log the pipeline to the server:
`export MLFLOW_TRACKING_URI=http://127.0.0.1:5000`; without it the pipeline uses the sqlite file directly.
"""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from videoreasoner.core import telemetry  # noqa: F401
from flows.cli_logging import cli_logging

log = logging.getLogger("flows.servers")  # not __name__: it is __main__ under python -m
ROOT = Path(__file__).resolve().parents[1]
AUTH_DB = Path("mlflow/basic_auth.db")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run a server in the foreground; SIGTERM to this process stops the server too."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the server through the process group; wait for it
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def mlflow_server_command(repo: Path, host: str = "127.0.0.1", port: int = 5000,
                          auth_config: Path | None = None, workers: int = 1) -> list[str]:
    """The `mlflow server` command line over the repository's embedded store."""
    repo = repo.resolve()
    (repo / "mlflow/artifacts").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
           "--backend-store-uri", f"sqlite:///{repo / 'mlflow/mlflow.db'}",
           "--default-artifact-root", (repo / "mlflow/artifacts").as_uri(), "--no-serve-artifacts", "--workers", str(workers)]
    return cmd + (["--app-name", "basic-auth"] if auth_config else [])


def auth_environment(repo: Path, env: dict[str, str], config_dir: Path) -> dict[str, str]:
    """Environment for `mlflow server --app-name basic-auth`: an auth config naming the admin from
    MLFLOW_TRACKING_USERNAME; the password travels only in the environment, never in a file."""
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise SystemExit("--auth needs MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment")
    config = config_dir / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{(repo / AUTH_DB).resolve()}\n"
                      f"admin_username = {user}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
                      encoding="utf-8")
    config.chmod(0o600)
    return dict(env, MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_AUTH_ADMIN_PASSWORD=password,
                MLFLOW_FLASK_SERVER_SECRET_KEY=env.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secrets.token_hex(32))


def run_mlflow(repo: Path, host: str, port: int, auth: bool) -> int:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="mlflow-auth-") as tmp:
        if auth:
            env = auth_environment(repo, env, Path(tmp))
        cmd = mlflow_server_command(repo, host, port, Path(tmp) if auth else None)
        log.info("MLflow UI at http://%s:%d (%s); point the pipeline at it with MLFLOW_TRACKING_URI=http://%s:%d",
                 host, port, "basic auth" if auth else "no auth", host, port)
        return _run(cmd, repo, env)


def run_prefect_ui(repo: Path, host: str, port: int) -> int:
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(repo.resolve() / ".prefect"))
    log.info("Prefect UI at http://%s:%d (PREFECT_HOME=%s)", host, port, env["PREFECT_HOME"])
    return _run([sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
                repo, env)


def deployment_spec(prefect_yaml: Path, name: str) -> dict:
    import yaml

    doc = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8"))
    for deployment in doc.get("deployments") or []:
        if deployment.get("name") == name:
            return deployment
    raise SystemExit(f"{prefect_yaml}: no deployment named {name!r}")


def serve(prefect_yaml: Path, name: str) -> None:
    """Serve one deployment of infra/prefect.yaml from this process (schedule, parameters and tags as
    declared there), so the local schedule and the declared one cannot drift apart."""
    spec = deployment_spec(prefect_yaml, name)
    from prefect.schedules import Cron

    from flows.pipeline import pipeline

    if not os.environ.get("PREFECT_API_URL"):
        log.warning("no PREFECT_API_URL: the temporary server has no scheduler, so the cron schedule will not "
                    "fire. Run `vr servers prefect-ui` and export PREFECT_API_URL=http://127.0.0.1:4200/api first.")
    schedules = [Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
                 for s in spec.get("schedules") or [] if "cron" in s]
    log.info("serving deployment %s (%s); Ctrl-C stops", name, ", ".join(s["cron"] for s in spec["schedules"]))
    pipeline.serve(name=name, schedules=schedules, parameters=spec.get("parameters") or {},
                   tags=spec.get("tags"), description=spec.get("description"),
                   global_limit=spec.get("concurrency_limit"))


def team(repo: Path, command: str, auth: bool, names: tuple[str, ...] = ()) -> int:
    """`vr servers up|down|restart|status|users` (flows/team_servers.py, flows/team_auth.py)."""
    import json

    from flows import team_servers

    settings = team_servers.Team.from_env(repo, auth=auth)
    try:
        if command == "up":
            team_servers.up(settings)
            print(team_servers.exports(settings))
        elif command == "restart":
            restarted = team_servers.restart(settings, names or team_servers.SERVICES)
            log.info("restarted: %s%s", ", ".join(names or team_servers.SERVICES),
                     " (MLflow with basic auth)" if restarted.auth else "")
        elif command == "down":
            log.info("stopped: %s", ", ".join(team_servers.down(settings)) or "nothing was running")
        elif command == "status":
            rows = team_servers.status(settings)
            print(json.dumps(rows, indent=2))
            return 0 if rows["postgres"]["running"] and all(rows[n]["healthy"] for n in team_servers.SERVICES) else 3
        else:
            from flows.team_auth import create_users

            from mlflow.exceptions import MlflowException

            try:
                done = create_users(settings.mlflow_url)
            except MlflowException as exc:
                log.error("could not create the users on %s (started with --auth? admin from "
                          "MLFLOW_TRACKING_USERNAME/PASSWORD?): %s", settings.mlflow_url, exc)
                return 1
            for user, what in done.items():
                log.info("user %s %s", user, what)
    except team_servers.ServerError as exc:
        log.error("%s", exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vr servers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=".", type=Path)
    sub = parser.add_subparsers(dest="command", required=True)
    ml = sub.add_parser("mlflow", help="MLflow tracking server + UI on 127.0.0.1")
    ml.add_argument("--port", type=int, default=5000)
    ml.add_argument("--auth", action="store_true", help="basic auth, admin from MLFLOW_TRACKING_USERNAME/PASSWORD")
    ui = sub.add_parser("prefect-ui", help="Prefect server + UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=4200)
    team_up = sub.add_parser("up", help="team mode: PostgreSQL, MLflow and Prefect servers (flows/team_servers.py)")
    team_up.add_argument("--auth", action="store_true", help="MLflow basic auth (admin MLFLOW_TRACKING_USERNAME/PASSWORD)")
    sub.add_parser("down", help="stop the team servers")
    team_restart = sub.add_parser("restart", help="restart the team's MLflow or Prefect server (both when none is named)")
    team_restart.add_argument("services", nargs="*", metavar="{mlflow,prefect}")  # checked by team_servers.restart
    team_restart.add_argument("--auth", action="store_true",
                              help="MLflow comes back with basic auth (kept anyway when it last ran with it)")
    sub.add_parser("status", help="pid and health of each team server")
    sub.add_parser("users", help="create the registrar and reader on the team MLflow server (flows/team_auth.py)")
    sv = sub.add_parser("serve", help="serve the scheduled deployment of infra/prefect.yaml locally")
    sv.add_argument("--deployment", default="nightly")
    sv.add_argument("--prefect-file", type=Path, default=Path("infra/prefect.yaml"))
    args = parser.parse_args(argv)
    cli_logging()
    if args.command == "mlflow":
        return run_mlflow(args.repo, "127.0.0.1", args.port, args.auth)
    if args.command in ("up", "down", "restart", "status", "users"):
        return team(args.repo, args.command, getattr(args, "auth", False), tuple(getattr(args, "services", ())))
    if args.command == "prefect-ui":
        return run_prefect_ui(args.repo, "127.0.0.1", args.port)
    serve(args.repo / args.prefect_file, args.deployment)
    return 0


if __name__ == "__main__":
    sys.exit(main())
