"""A process worker runs infra/prefect.yaml's `nightly` deployment against the team servers: the work pool is
created, the deployment deployed from a workspace on the tiny profile (tests/helpers_dvc_workspace.py) and
triggered, `prefect worker start` picks the run up and the flow runs every stage end to end, logging to
the MLflow server (artifacts through its proxy). Both servers are restarted while the flow runs (`vr servers
restart`): Prefect once the flow run is RUNNING, MLflow while a stage's run is open and logging. The
clients ride the outages out, and both servers' APIs then show the whole run: COMPLETED in Prefect; in
MLflow the pipeline's parent run and its stage runs, each FINISHED with its lineage tags (pipeline run id =
the flow run id, git commit, dvc.lock hashes) and its curves, and one completely registered model version.
Slow: the tiny profile trains for a step or two (about 4 minutes on two busy cores)."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.helpers_dvc_workspace import make_workspace, tool_env

pytestmark = pytest.mark.slow
POOL = "videoreasoner-process"  # the pool infra/prefect.yaml's nightly deployment names
FLOW_TIMEOUT_S = 900


def prefect(ws, env, *args, timeout=300) -> str:
    done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ws, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def deploy_nightly(ws, env) -> None:
    """`prefect deploy` of infra/prefect.yaml's nightly. Prefect 3.8.8's CLI, after creating the deployment,
    asks whether a worker is online with limit/offset null, which its own server refuses (422 on
    /work_pools/<pool>/workers/filter): that one failure, after the success line, is tolerated."""
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file",
                           "infra/prefect.yaml", "-n", "nightly"], cwd=ws, env=env, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    known = "successfully created" in out and "422 Unprocessable Entity" in out and "/workers/filter" in out
    assert done.returncode == 0 or known, f"prefect deploy: exit {done.returncode}\n{out}"


def wait_for_flow_run(api: str, run_id: str, worker, worker_log, on_poll=lambda run: None) -> dict:
    deadline = time.monotonic() + FLOW_TIMEOUT_S
    while True:
        run = requests.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        on_poll(run)
        assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{worker_log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"flow run {run_id} still {run['state_type']} after {FLOW_TIMEOUT_S} s"
        time.sleep(2)


def flow_log(worker_log, chars: int = 8000) -> str:
    """What a failed flow run's cause is in: the worker log before the test stopped the worker (its
    teardown's tracebacks would fill the tail), with the engine's crash report lines first."""
    text = worker_log.read_text(errors="replace").split("Received SIGTERM", 1)[0]
    crash = [line for line in text.splitlines() if "Crash detected" in line or "Engine execution" in line]
    return "\n".join(["crash report: " + (" | ".join(crash) or "none"), "...", text[-chars:]])


def open_stage_run(team, pipeline_run_id: str) -> str | None:
    """The stage whose MLflow run of this pipeline run is RUNNING now (None when no stage's is)."""
    from mlflow import MlflowClient

    from videoreasoner.core.tracking import EXPERIMENT

    client = MlflowClient(team.mlflow_url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return False
    runs = client.search_runs([experiment.experiment_id], f"tags.pipeline_run_id = '{pipeline_run_id}' and "
                              "tags.stage != 'pipeline' and attributes.status = 'RUNNING'")
    return runs[0].data.tags["stage"] if runs else None


def test_a_worker_runs_the_nightly_deployment_against_the_team_servers(team, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from videoreasoner.core.tracking import EXPERIMENT

    ws = make_workspace(tmp_path / "ws")
    # PWD as a shell's `cd` sets it: the deployment's pull step is `{{ $PWD }}`, read from the environment
    # the flow engine's "Crash details" (the exception behind a Crashed state) are logged at DEBUG
    env = dict(tool_env(), **team.as_user("admin"), PREFECT_API_URL=team.prefect_api_url, PWD=str(ws),
               PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=team.env["PYTHONPATH"],
               PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL="DEBUG")
    prefect(ws, env, "work-pool", "create", POOL, "--type", "process")
    deploy_nightly(ws, env)
    deployment = requests.get(f"{team.prefect_api_url}/deployments/name/videoreasoner-pipeline/nightly",
                              timeout=30).json()
    (step,) = deployment["pull_steps"]  # the flow must run in the throw-away workspace, nowhere else
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(ws), deployment
    assert deployment["job_variables"]["env"]["PREFECT_CLIENT_MAX_RETRIES"] == "7", deployment  # rides out ~4 min
    triggered = prefect(ws, env, "deployment", "run", "videoreasoner-pipeline/nightly")
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", triggered).group(1)

    worker_log = tmp_path / "worker.log"
    with open(worker_log, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                                   "--type", "process"], cwd=ws, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    for key, value in team.as_user("reader").items():  # this process reads MLflow as the reader
        monkeypatch.setenv(key, value)
    restarted = {}

    def restart_servers_mid_flow(run):
        if "prefect" not in restarted and run["state_type"] == "RUNNING":
            restarted["prefect"] = team.servers("restart", "prefect", "--auth").stdout
        elif "prefect" in restarted and "mlflow" not in restarted and (stage := open_stage_run(team, run_id)):
            restarted["mlflow"] = team.servers("restart", "mlflow").stderr  # no --auth: it keeps basic auth
            restarted["while"] = stage

    try:
        run = wait_for_flow_run(team.prefect_api_url, run_id, worker, worker_log, restart_servers_mid_flow)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
    assert run["state_type"] == "COMPLETED", f"{run['state_type']}: {run['state']}\n{flow_log(worker_log)}"
    assert set(restarted) == {"prefect", "mlflow", "while"}, f"restarted only {sorted(restarted)} while the flow ran"
    assert "restarted: mlflow (MLflow with basic auth)" in restarted["mlflow"], restarted["mlflow"]
    anonymous = requests.get(f"{team.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30)
    assert anonymous.status_code == 401, anonymous.text  # the restarted server still asks who you are
    deployment = requests.get(f"{team.prefect_api_url}/deployments/{run['deployment_id']}", timeout=30).json()
    assert deployment["name"] == "nightly" and run["work_pool_name"] == POOL

    # MLflow, as the reader: the run and its lineage are there for everyone with READ
    reader = MlflowClient(team.mlflow_url)
    experiment = reader.get_experiment_by_name(EXPERIMENT)
    runs = reader.search_runs([experiment.experiment_id], f"tags.pipeline_run_id = '{run_id}'")
    (parent,) = [r for r in runs if r.data.tags.get("stage") == "pipeline"]
    assert parent.info.status == "FINISHED" and parent.data.tags["prefect_flow_run_id"] == run_id
    assert parent.data.tags["git_commit"] not in ("", "unknown")
    stage_runs = [r for r in runs if r.data.tags.get("stage") not in (None, "pipeline")]
    assert {r.data.tags["stage"] for r in stage_runs} >= {"sft", "rl", "evaluate"}, [r.data.tags for r in runs]
    for stage_run in stage_runs:
        assert stage_run.info.status == "FINISHED", (stage_run.data.tags["stage"], stage_run.info.status)
        assert stage_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert stage_run.data.tags["dvc_lock_hash"] not in ("", "none")
        assert stage_run.data.tags["git_commit"] == parent.data.tags["git_commit"]
    (restarted_stage,) = [r for r in stage_runs if r.data.tags["stage"] == restarted["while"]]
    assert restarted_stage.data.metrics, restarted_stage.data.tags  # it logged, and ended, across the restart
    (sft,) = [r for r in stage_runs if r.data.tags["stage"] == "sft"]
    steps = int(sft.data.metrics["steps"])  # the stage's summary, logged last: the run was logged to its end
    (summary,) = reader.get_metric_history(sft.info.run_id, "train/train_runtime")  # the trainer's, at its end
    assert steps >= 1 and summary.step == steps and "final_loss" in sft.data.metrics, sft.data.metrics
    versions = reader.search_model_versions("name = 'video-reasoner'")
    (mine,) = [v for v in versions if v.tags.get("pipeline_run_id") == run_id]
    assert mine.tags["registration"] == "complete" and mine.tags["dvc_lock_hash"] == parent.data.tags["dvc_lock_hash"]
    assert mine.tags["git_commit"] == parent.data.tags["git_commit"]
