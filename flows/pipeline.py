"""The pipeline flow: `dvc repro` every stage of dvc.yaml in DAG order, then register and promote.

One task per stage runs `dvc repro --single-item <stage>` (one at a time: DVC's lock forbids two in one
workspace), streams the stage's output lines into Prefect's log and retries only transient failures
(DVC lock held, connection/database hiccups, a preempted process). The flow opens a parent MLflow run;
stage processes get its id and the pipeline run id through the environment (see `stage_env`), and
after each stage the flow tags that stage's MLflow run with the final dvc.lock hash.
One flow at a time per workspace: a second one waits up to `lock_timeout_s` (`--wait`) for the
workspace lock (.dvc/tmp/vr-pipeline.lock), then refuses, naming the holder's pid (see `workspace_lock`).
Run: `vr pipeline` (flows/command.py); `--force` re-runs every stage.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from videoreasoner.core import telemetry  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
# Before Prefect is imported: its settings are read once. Flow runs land in the repository's .prefect/.
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.exceptions import MissingContextError  # noqa: E402

from flows.dag import runnable_stages  # noqa: E402
from flows.lineage import lineage_tags  # noqa: E402

log = logging.getLogger("flows.pipeline")  # shared with flows/command.py: `vr pipeline` logs under one name
TRANSIENT_PATTERNS = [re.compile(p, re.I) for p in (
    r"Unable to acquire lock", r"database is locked", r"Connection (reset|refused|aborted)",
    r"Temporary failure in name resolution", r"Read timed out", r"ConnectTimeout", r"503 Service Unavailable",
    r"NCCL.*(timeout|timed out|Watchdog)", r"Socket Timeout", r"Too many open files",
)]
PREEMPTED = {-9, -15, 137, 143}  # SIGKILL/SIGTERM: a preempted node or an evicted pod
# One rank of a multi-process stage killed by a signal (a preempted node, an evicted pod, the OOM killer),
# as the launchers report it: DeepSpeed's ("... exits with return code = -9"; the launcher itself then
# exits 247) and torchrun's, under accelerate ("Signal 9 (SIGKILL) received by PID").
SIGNALLED_RANK = re.compile(r"exits with return code = -(9|15)\b|Signal (9|15) \(SIG(KILL|TERM)\) received")
# What a surviving rank raises when its peer is gone or stuck (gloo, NCCL). Transient only when it is the
# only error raised: a rank that raised a bug of its own (a ValueError) also leaves its peers with this.
LOST_PEER = re.compile(r"Connection (closed|reset) by peer|Timed out waiting .* for (recv|send)|"
                       r"NCCL.*(timeout|timed out|Watchdog)", re.I)
_RAISED = re.compile(r"^(\[rank\d+\]:\s*)?([A-Za-z_][\w.]*)(Error|Exception|Interrupt)\b:")
LOCK_FILE = Path(".dvc/tmp/vr-pipeline.lock")  # under .dvc/tmp: git-ignored by DVC, beside DVC's own locks


class WorkspaceBusy(RuntimeError):
    """Another pipeline flow holds the workspace lock."""


class StageFailed(RuntimeError):
    def __init__(self, stage: str, returncode: int, tail: list[str], transient: bool):
        kind = "transient failure" if transient else "failed"
        super().__init__(f"stage {stage!r} {kind} (exit {returncode}); last lines:\n" + "".join(tail[-20:]))
        self.stage, self.returncode, self.transient = stage, returncode, transient


def is_transient(returncode: int, lines: list[str]) -> bool:
    """Whether a failed stage is worth retrying, from its exit status and its last output lines: a killed
    process or rank, a known transient message, or ranks that lost a peer while none raised anything
    else. (When one rank is killed, the launcher may report its peer's connection error first: which
    rank it names is a race, so both are read.)"""
    if returncode in PREEMPTED or any(SIGNALLED_RANK.search(line) for line in lines):
        return True
    if any(p.search(line) for p in TRANSIENT_PATTERNS for line in lines):
        return True
    raised = [line for line in lines if _RAISED.match(line.strip())]
    return bool(raised) and all(LOST_PEER.search(line) for line in raised)


def _logger():
    """Prefect's run logger inside a run; the module logger when the flow body is called directly."""
    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _retry_if_transient(task_obj, task_run, state) -> bool:
    with contextlib.suppress(Exception):
        exc = state.result(raise_on_failure=False)
        return bool(getattr(exc, "transient", False))
    return False


def _lock_holder(path: Path) -> str:
    """Who holds the lock, from what the holder wrote into it (pid, host, start time, command)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "a process that has not written its pid yet"
    return (f"pid {info['pid']} on {info.get('host', '?')}, running since {info.get('started', '?')}: "
            f"{info.get('cmd', '?')}")


@contextlib.contextmanager
def workspace_lock(repo: str | Path, timeout_s: float = 0.0, poll_s: float = 0.5):
    """Hold the workspace's pipeline lock for the whole flow (stages, MLflow parent run, registration).

    DVC's own lock covers one `dvc repro` at a time; two flows in one workspace would still interleave
    their stages, parent runs and registrations. An flock is released by the kernel when its holder
    dies (kill -9 included), so a crashed flow never leaves a stale lock. Waits up to `timeout_s`
    seconds (0: refuse at once), then raises WorkspaceBusy naming the holder."""
    path = Path(repo).resolve() / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held open for the lock's lifetime)
    deadline = time.monotonic() + max(timeout_s, 0.0)
    logged = False
    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _lock_holder(path)
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(
                        f"workspace {path.parents[2]} is in use by another pipeline run ({holder}); lock file "
                        f"{path}. Wait for it to finish, or start this one with --wait SECONDS") from None
                if not logged:
                    _logger().info("workspace busy (%s): waiting up to %.0f s", holder, timeout_s)
                    logged = True
                time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cmd": " ".join(sys.argv)}))
        fh.flush()
        try:
            yield path
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def stage_env(repo: Path, tracking_uri: str, pipeline_run_id: str, parent_run_id: str) -> dict[str, str]:
    """The environment of every stage process (videoreasoner/core/tracking.py reads the run identity from it)."""
    env = dict(os.environ)
    env.pop("MLFLOW_RUN_ID", None)  # would make mlflow.start_run() resume that run instead of a new one
    env.update(MLFLOW_TRACKING_URI=tracking_uri, PIPELINE_RUN_ID=pipeline_run_id,
               MLFLOW_PARENT_RUN_ID=parent_run_id, PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


@task(task_run_name="dvc repro {stage}", retries=2, retry_delay_seconds=[10, 60],
      retry_condition_fn=_retry_if_transient, cache_policy=NO_CACHE)
def repro_stage(stage: str, repo: str, force: bool = False, env: dict[str, str] | None = None) -> str:
    """`dvc repro --single-item <stage>`, its output streamed line by line; returns 'ran' or 'skipped'."""
    logger = _logger()
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", *(["--force"] if force else []), stage]
    logger.info("$ %s", " ".join(cmd[2:]))
    tail: deque[str] = deque(maxlen=200)
    ran = False
    with subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1, errors="replace") as proc:
        for line in proc.stdout:
            tail.append(line)
            if worth_logging(line):
                logger.info("[%s] %s", stage, line.rstrip())
            ran = ran or f"Running stage '{stage}'" in line
    if proc.returncode != 0:
        raise StageFailed(stage, proc.returncode, list(tail), is_transient(proc.returncode, list(tail)))
    return "ran" if ran else "skipped"


_PROGRESS_RE = re.compile(r"\d+%\|")


def worth_logging(line: str) -> bool:
    """Blank lines and the intermediate redraws of progress bars (tqdm's carriage returns arrive as
    lines) are kept out of Prefect's log; a finished bar (100%) is kept."""
    text = line.strip()
    return bool(text) and (not _PROGRESS_RE.search(text) or "100%|" in text)


UNENDED_RUN = "its process exited without ending the run"  # the `closed_by_pipeline` tag of such a run


def tag_stage_runs(client, experiment_id: str, stage: str, tags: dict[str, str], parent_run_id: str) -> int:
    """Tag the MLflow runs a stage opened in this pipeline run: parent run and final dvc.lock hash
    (a stage only knows its lock entry of the previous run: DVC writes dvc.lock after the command).
    Called once the stage's last attempt has exited, so a run still RUNNING belongs to an attempt that
    died before it could end its run (killed, or its tracking server gone for longer than the client's
    retries): it is ended FAILED and tagged why, never left RUNNING beside the retry's finished run."""
    query = f"tags.pipeline_run_id = '{tags['pipeline_run_id']}' and tags.stage = '{stage}'"
    runs = client.search_runs([experiment_id], filter_string=query)
    for run in runs:
        if "mlflow.parentRunId" not in run.data.tags:
            client.set_tag(run.info.run_id, "mlflow.parentRunId", parent_run_id)
        client.set_tag(run.info.run_id, "dvc_lock_hash", tags[f"dvc_lock.{stage}"])
        client.set_tag(run.info.run_id, "git_commit", tags["git_commit"])
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "closed_by_pipeline", UNENDED_RUN)
            client.set_terminated(run.info.run_id, "FAILED")
            _logger().warning("MLflow run %s of stage %s was left RUNNING (%s): ended as FAILED",
                              run.info.run_id, stage, UNENDED_RUN)
    return len(runs)


@task(task_run_name="register and promote", cache_policy=NO_CACHE)
def register_and_promote(repo: str, tags: dict[str, str], parent_run_id: str) -> dict[str, Any]:
    """Register the workspace's model unless a version with the same pipeline hash exists."""
    from flows.aliases import alias_version, find_version
    from flows.gates import load_rules
    from flows.registration import register_workspace
    from flows.registry_tracking import mlflow_client
    from flows.revision import record_revision

    logger = _logger()
    rules = load_rules(Path(repo) / "mlflow/registry.yaml")
    missing = [p for p in (rules.model_dir, rules.policy, rules.metrics) if not (Path(repo) / p).exists()]
    if missing:
        logger.warning("nothing to register yet: %s missing", ", ".join(missing))
        return {"version": None, "registered": False, "champion": alias_version(rules, rules.champion)
                if mlflow_client().search_registered_models(f"name = '{rules.model_name}'") else None}
    existing = find_version(rules, "dvc_lock_hash", tags["dvc_lock_hash"])
    if existing:
        logger.info("%s version %s already holds this pipeline state: not registering again",
                    rules.model_name, existing)
        if rev := record_revision(repo, rules.model_name, existing):
            logger.info("%s version %s: DVC revision %s recorded", rules.model_name, existing, rev)
        return {"version": existing, "registered": False, "champion": alias_version(rules, rules.champion)}
    result = register_workspace(repo, rules, tags=tags, parent_run_id=parent_run_id)
    logger.info("registered %s version %s: %s", rules.model_name, result["version"], result["decision"])
    return result | {"registered": True}


@flow(name="videoreasoner-pipeline", log_prints=False)
def pipeline(repo: str = ".", force: bool = False, register_model: bool = True,
             lock_timeout_s: float = 0.0) -> dict[str, Any]:
    """Every dvc.yaml stage in DAG order, each in its own task; then register + promote. Holds the
    workspace lock throughout: a second flow waits up to `lock_timeout_s` seconds, then refuses."""
    with workspace_lock(repo, lock_timeout_s):
        return _pipeline(Path(repo).resolve(), force, register_model)


def _pipeline(repo_path: Path, force: bool, register_model: bool) -> dict[str, Any]:
    from prefect.runtime import flow_run

    from flows.registry_tracking import mlflow_client, tracking_setup

    logger = _logger()
    pipeline_run_id = str(flow_run.id or uuid.uuid4())
    stages = runnable_stages(repo_path)
    logger.info("stages in DAG order (frozen ones skipped): %s", " -> ".join(stages))
    uri, experiment_id = tracking_setup(repo_path)
    client = mlflow_client()
    parent = client.create_run(experiment_id, run_name="pipeline", tags={
        "pipeline_run_id": pipeline_run_id, "stage": "pipeline", "prefect_flow_run_id": str(flow_run.id or "")})
    parent_id = parent.info.run_id
    env = stage_env(repo_path, uri, pipeline_run_id, parent_id)
    summary: dict[str, Any] = {"pipeline_run_id": pipeline_run_id, "mlflow_run_id": parent_id,
                               "tracking_uri": uri, "stages": {}}
    status, tags = "FAILED", lineage_tags(repo_path, pipeline_run_id)
    try:
        for stage in stages:
            summary["stages"][stage] = "failed"  # until its task returns
            try:
                summary["stages"][stage] = repro_stage(stage, str(repo_path), force, env)
            finally:  # a failed stage's run is nested and tagged too
                tags = lineage_tags(repo_path, pipeline_run_id)
                with _unless_failing(summary["stages"][stage] == "failed", f"tag the runs of stage {stage!r}"):
                    tag_stage_runs(client, experiment_id, stage, tags, parent_id)
                    client.set_tag(parent_id, f"stage.{stage}", summary["stages"][stage])
        if register_model:
            summary["registry"] = register_and_promote(str(repo_path), tags, parent_id)
        status = "FINISHED"
    finally:
        with _unless_failing(status == "FAILED", f"close the parent run {parent_id}"):
            for key, value in tags.items():
                client.set_tag(parent_id, key, value)
            client.log_dict(parent_id, summary, "pipeline_summary.json")
            client.set_terminated(parent_id, status)
    return summary


@contextlib.contextmanager
def _unless_failing(failing: bool, what: str):
    """MLflow bookkeeping in a `finally` of a flow that is already failing logs its own error instead of
    raising it: often the tracking server is what failed, and its error would hide the real one."""
    try:
        yield
    except Exception as exc:
        if not failing:
            raise
        from flows.retries import redact

        _logger().warning("could not %s in MLflow: %s", what, redact(str(exc))[:500])


if __name__ == "__main__":  # the command is flows/command.py: it checks for work before Prefect is imported
    sys.exit("flows/pipeline.py defines the flow; run it with `vr pipeline` (python -m flows.command)")
